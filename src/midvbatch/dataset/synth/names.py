"""Names and places the synthesizer writes on a document, in the document's own letters.

One pool per main language of a document type (catalog.document_languages): Cyrillic for
the Russian, Ukrainian and Serbian documents, Greek for the Greek passport, Latin with its
diacritics for the German, Czech, Hungarian, Polish, Turkish, Estonian, Finnish, Latvian,
Croatian, Romanian, Spanish, Portuguese and Norwegian ones; others (and the Han, Japanese
and Arabic-script types, whose letters no font the synthesizer has carries) keep plain
Latin capitals. Every pool has 16 surnames, 16 given names and 14 places, so that a seed
draws the same places in each and a document's other values do not move. Invented
combinations of common names, never a real person.

The machine-readable zone writes names in Latin capitals: ``mrz_letters`` transliterates
(Cyrillic and Greek letter by letter, diacritics dropped, as ICAO 9303 does in outline).
"""

from __future__ import annotations

import unicodedata

from midvbatch.dataset.catalog import document_languages

LATIN = (
    "HOXHA MULLER GARCIA NOVAK SILVA IVANOVA KOVACS ROSSI NIELSEN YILMAZ PETROV TANAKA SMITH DUBOIS POPESCU HORVAT",
    "ARBEN ANNA MARIA JAN ELENA LUCA SOFIA MEHMET IVAN YUKI JOHN CLAIRE ANDREI MARKO PETRA LEILA",
    "TIRANE WIEN MADRID PRAHA LISBOA ROMA OSLO RIGA TALLINN ANKARA KYIV BEOGRAD BUCURESTI HELSINKI",
)
_POOLS: dict[str, tuple[str, str, str]] = {  # surnames, given names, places
    "rus": (
        "ИВАНОВА ПЕТРОВ СМИРНОВ КУЗНЕЦОВА ПОПОВ СОКОЛОВ ЛЕБЕДЕВА КОЗЛОВ НОВИКОВ МОРОЗОВА ВОЛКОВ СОЛОВЬЕВ ВАСИЛЬЕВА ЗАЙЦЕВ ПАВЛОВ СЕМЕНОВА",
        "АННА ИВАН МАРИЯ СЕРГЕЙ ЕЛЕНА АЛЕКСЕЙ ОЛЬГА ДМИТРИЙ НАТАЛЬЯ АНДРЕЙ ТАТЬЯНА НИКОЛАЙ ИРИНА ПАВЕЛ СВЕТЛАНА ЮРИЙ",
        "МОСКВА КАЗАНЬ ОМСК ТОМСК САМАРА ПЕРМЬ ТВЕРЬ УФА ТУЛА ОРЕЛ КУРСК ЧИТА ПСКОВ СОЧИ",
    ),
    "ukr": (
        "ШЕВЧЕНКО КОВАЛЕНКО БОНДАРЕНКО ТКАЧЕНКО КРАВЧЕНКО ОЛІЙНИК ШЕВЧУК ПОЛІЩУК ЛИСЕНКО РУДЕНКО МЕЛЬНИК ГОНЧАРУК ПЕТРЕНКО ЯКОВЕНКО ЗІНЧЕНКО ЄВТУШЕНКО",
        "ОЛЕНА ІВАН МАРІЯ ТАРАС ОКСАНА ПЕТРО НАТАЛІЯ ЮРІЙ ІРИНА ОЛЕГ ГАННА ДМИТРО ЛЮДМИЛА АНДРІЙ ВАСИЛЬ ЄВГЕН",
        "КИЇВ ЛЬВІВ ОДЕСА ХАРКІВ ДНІПРО ЗАПОРІЖЖЯ ВІННИЦЯ ПОЛТАВА ЧЕРНІГІВ СУМИ ЖИТОМИР РІВНЕ ЛУЦЬК УЖГОРОД",
    ),
    "srp": (
        "ЈОВАНОВИЋ ПЕТРОВИЋ НИКОЛИЋ МАРКОВИЋ ЂОРЂЕВИЋ СТОЈАНОВИЋ ИЛИЋ СТАНКОВИЋ ПАВЛОВИЋ МИЛОШЕВИЋ ПОПОВИЋ ЖИВКОВИЋ ТОДОРОВИЋ ЈАНКОВИЋ САВИЋ ЋИРИЋ",
        "МАРКО ЈЕЛЕНА НИКОЛА МИЛИЦА СТЕФАН АНА ЛАЗАР ЈОВАНА ДУШАН ТЕОДОРА ЖЕЉКО МАРИЈА ЂОРЂЕ САЊА НЕМАЊА ЉИЉАНА",
        "БЕОГРАД НИШ КРАГУЈЕВАЦ СУБОТИЦА ЗРЕЊАНИН ПАНЧЕВО ЧАЧАК КРАЉЕВО ЛЕСКОВАЦ ВАЉЕВО ШАБАЦ УЖИЦЕ ВРАЊЕ СОМБОР",
    ),
    "ell": (
        "ΠΑΠΑΔΟΠΟΥΛΟΣ ΒΛΑΧΟΣ ΑΓΓΕΛΟΠΟΥΛΟΣ ΝΙΚΟΛΑΙΔΗΣ ΓΕΩΡΓΙΟΥ ΠΑΠΑΓΕΩΡΓΙΟΥ ΟΙΚΟΝΟΜΟΥ ΜΑΚΡΗΣ ΔΗΜΗΤΡΙΟΥ ΚΩΝΣΤΑΝΤΙΝΙΔΗΣ ΚΑΡΑΛΗΣ ΙΩΑΝΝΟΥ ΧΑΤΖΗΣ ΣΤΑΥΡΟΠΟΥΛΟΣ ΜΙΧΑΗΛΙΔΗΣ ΖΑΧΑΡΙΑΔΗΣ",
        "ΜΑΡΙΑ ΓΕΩΡΓΙΟΣ ΕΛΕΝΗ ΙΩΑΝΝΗΣ ΑΙΚΑΤΕΡΙΝΗ ΚΩΝΣΤΑΝΤΙΝΟΣ ΣΟΦΙΑ ΔΗΜΗΤΡΙΟΣ ΑΝΝΑ ΝΙΚΟΛΑΟΣ ΔΕΣΠΟΙΝΑ ΠΑΝΑΓΙΩΤΗΣ ΕΙΡΗΝΗ ΧΡΗΣΤΟΣ ΒΑΣΙΛΙΚΗ ΑΘΑΝΑΣΙΟΣ",
        "ΑΘΗΝΑ ΘΕΣΣΑΛΟΝΙΚΗ ΠΑΤΡΑ ΗΡΑΚΛΕΙΟ ΛΑΡΙΣΑ ΒΟΛΟΣ ΙΩΑΝΝΙΝΑ ΧΑΝΙΑ ΚΑΒΑΛΑ ΡΟΔΟΣ ΣΕΡΡΕΣ ΚΑΛΑΜΑΤΑ ΚΟΖΑΝΗ ΚΕΡΚΥΡΑ",
    ),
    "deu": (
        "MÜLLER SCHRÖDER KÖHLER BÖHM GÜNTHER KRÄMER JÄGER MÖLLER HÖFER WÄCHTER SCHÄFER KÜHN GÖTZ FÖRSTER LÖWE MÄRZ",
        "JÜRGEN BÄRBEL JÖRG GÜNTER MARTINA LUKAS SÖREN KATHRIN RÜDIGER ANNA JOHANNES BJÖRN MAREN UWE BRIGITTE KLAUS",
        "MÜNCHEN KÖLN DÜSSELDORF NÜRNBERG LÜBECK GÖTTINGEN BERLIN HAMBURG WÜRZBURG SAARBRÜCKEN FÜRTH OSNABRÜCK GÖRLITZ ESSEN",
    ),
    "ces": (
        "NOVÁK SVOBODOVÁ DVOŘÁK ČERNÝ PROCHÁZKA KUČERA VESELÝ HORÁKOVÁ NĚMEC POKORNÝ MAREŠ POSPÍŠIL HÁJEK KRÁL JELÍNEK RŮŽIČKA",
        "JAN PETRA JIŘÍ TEREZA TOMÁŠ LUCIE ONDŘEJ KATEŘINA LUKÁŠ MARKÉTA MICHAL ZUZANA ŠTĚPÁN BARBORA MATĚJ LENKA",
        "PRAHA BRNO OSTRAVA PLZEŇ LIBEREC OLOMOUC JIHLAVA KLADNO ZLÍN PARDUBICE KOŠICE ŽILINA BRATISLAVA NITRA",
    ),
    "hun": (
        "KOVÁCS SZABÓ TÓTH NAGY HORVÁTH VARGA KISS MOLNÁR NÉMETH FARKAS BALOGH PAPP TAKÁCS JUHÁSZ LAKATOS MÉSZÁROS",
        "LÁSZLÓ ÁGNES ISTVÁN ZSÓFIA GYÖRGY ÉVA JÁNOS KATALIN ZOLTÁN ERZSÉBET PÉTER ILDIKÓ TAMÁS ANIKÓ GÁBOR ESZTER",
        "BUDAPEST DEBRECEN SZEGED MISKOLC PÉCS GYŐR NYÍREGYHÁZA KECSKEMÉT SZOMBATHELY SOPRON EGER VESZPRÉM TATABÁNYA SZOLNOK",
    ),
    "pol": (
        "NOWAK KOWALSKA WIŚNIEWSKI WÓJCIK KOWALCZYK KAMIŃSKI LEWANDOWSKA ZIELIŃSKI SZYMAŃSKI WOŹNIAK DĄBROWSKI KOZŁOWSKA JANKOWSKI MAZUR KWIATKOWSKI KRAWCZYK",
        "ŁUKASZ AGNIESZKA PIOTR MAŁGORZATA KRZYSZTOF JOANNA TOMASZ KATARZYNA PAWEŁ MAGDALENA MICHAŁ ANNA JAKUB ŻANETA MACIEJ BARBARA",
        "WARSZAWA KRAKÓW ŁÓDŹ WROCŁAW POZNAŃ GDAŃSK SZCZECIN BYDGOSZCZ LUBLIN BIAŁYSTOK KATOWICE GDYNIA CZĘSTOCHOWA RZESZÓW",
    ),
    "tur": (
        "YILMAZ KAYA DEMİR ŞAHİN ÇELİK YILDIZ YILDIRIM ÖZTÜRK AYDIN ÖZDEMİR ARSLAN DOĞAN KILIÇ ASLAN ÇETİN KARA",
        "MEHMET AYŞE MUSTAFA FATMA AHMET EMİNE ALİ HATİCE HÜSEYİN ZEYNEP HASAN ELİF İBRAHİM ŞULE ÖMER GÜLŞEN",
        "İSTANBUL ANKARA İZMİR BURSA ANTALYA KONYA GAZİANTEP ŞANLIURFA KOCAELİ MERSİN DİYARBAKIR ESKİŞEHİR KAYSERİ MUĞLA",
    ),
    "est": (
        "TAMM SAAR SEPP MÄGI KASK KUKK RÄTSEP PÕLD KÕIV LEPIK OJA ILVES PÄRN VÄLI JÕGI KÄRNER",
        "MARI JÜRI KADRI TÕNU MÄRT PIRET ANTS MAIE TIIT LIIS PEETER KÜLLI TOOMAS ÜLLE JAAN ELLE",
        "TALLINN TARTU NARVA PÄRNU VILJANDI RAKVERE MAARDU KURESSAARE SILLAMÄE VALGA VÕRU JÕHVI HAAPSALU PAIDE",
    ),
    "fin": (
        "KORHONEN VIRTANEN MÄKINEN NIEMINEN MÄKELÄ HÄMÄLÄINEN LAINE HEIKKINEN KOSKINEN JÄRVINEN LEHTONEN LEHTINEN SAARINEN SALMINEN HEINONEN NIEMI",
        "JUHANI MARIA MIKKO JOHANNA PÄIVI TIMO ANNIKKI MATTI HELENA JUKKA KAISA PEKKA TUULIKKI ANTTI SIRKKA VÄINÖ",
        "HELSINKI ESPOO TAMPERE VANTAA OULU TURKU JYVÄSKYLÄ KUOPIO LAHTI PORI JOENSUU LAPPEENRANTA HÄMEENLINNA SEINÄJOKI",
    ),
    "lav": (
        "BĒRZIŅŠ KALNIŅŠ OZOLIŅŠ JANSONS OZOLS LIEPIŅA KRŪMIŅŠ BALODIS EGLĪTIS PĒTERSONS VĪTOLS KĻAVIŅŠ KĀRKLIŅŠ VANAGS ZARIŅA ĀBOLIŅŠ",
        "JĀNIS ANNA ANDRIS INĀRA MĀRIS ILZE ĢIRTS LĪGA KĀRLIS DACE EDGARS ZANE ROBERTS ANDA VALDIS SANDRA",
        "RĪGA DAUGAVPILS LIEPĀJA JELGAVA JŪRMALA VENTSPILS RĒZEKNE VALMIERA JĒKABPILS OGRE TUKUMS CĒSIS KULDĪGA SALASPILS",
    ),
    "hrv": (
        "HORVAT KOVAČEVIĆ BABIĆ MARIĆ JURIĆ NOVAK KOVAČIĆ KNEŽEVIĆ VUKOVIĆ MARKOVIĆ PETROVIĆ MATIĆ TOMIĆ PAVLOVIĆ BOŽIĆ ŠARIĆ",
        "IVAN ANA MARKO MARIJA JOSIP IVANA LUKA PETRA MATEJ LUCIJA TOMISLAV MAJA ŽELJKO NIKOLINA ĐURO MARTINA",
        "ZAGREB SPLIT RIJEKA OSIJEK ZADAR PULA KARLOVAC VARAŽDIN ŠIBENIK SISAK DUBROVNIK BJELOVAR ČAKOVEC VUKOVAR",
    ),
    "ron": (
        "POPESCU IONESCU POPA DUMITRU STAN STOICA GHEORGHE MATEI CIOBANU CONSTANTIN ȘERBAN RUSU MUREȘAN TUDOR DOBRE BĂLAN",
        "ANDREI MARIA ȘTEFAN IOANA MIHAI ELENA ALEXANDRU ANDREEA GHEORGHE CRISTINA IONUȚ MIHAELA CĂTĂLIN ROXANA RĂZVAN LAURA",
        "BUCUREȘTI TIMIȘOARA IAȘI CONSTANȚA CRAIOVA BRAȘOV GALAȚI PLOIEȘTI ORADEA BRĂILA ARAD PITEȘTI SIBIU CHIȘINĂU",
    ),
    "spa": (
        "GARCÍA MARTÍNEZ LÓPEZ SÁNCHEZ PÉREZ GÓMEZ MARTÍN JIMÉNEZ RUIZ HERNÁNDEZ DÍAZ MUÑOZ ÁLVAREZ ROMERO ALONSO GUTIÉRREZ",
        "JOSÉ MARÍA JESÚS LUCÍA ÁNGEL SOFÍA RAMÓN INÉS JULIÁN VERÓNICA ANDRÉS MÓNICA RUBÉN ROCÍO IÑAKI BEGOÑA",
        "MADRID BARCELONA VALENCIA SEVILLA ZARAGOZA MÁLAGA MURCIA PALMA BILBAO ALICANTE CÓRDOBA VALLADOLID VIGO GIJÓN",
    ),
    "por": (
        "SILVA SANTOS FERREIRA PEREIRA OLIVEIRA COSTA RODRIGUES MARTINS JESUS SOUSA FERNANDES GONÇALVES GOMES LOPES MARQUES ALVES",
        "JOÃO MARIA JOSÉ ANA ANTÓNIO CONCEIÇÃO LUÍS INÊS SEBASTIÃO LÚCIA ESTÊVÃO CÁTIA SIMÃO BEATRIZ JOAQUIM MÓNICA",
        "LISBOA PORTO BRAGA COIMBRA FUNCHAL SETÚBAL AVEIRO ÉVORA FARO VISEU LEIRIA GUIMARÃES BRAGANÇA OLHÃO",
    ),
    "nor": (
        "HANSEN JOHANSEN OLSEN LARSEN SØRENSEN ØSTBY SÆTHER LØKKEN BRÅTEN HÅLAND MYRÅS STRØM BERG HAUGEN DAHL SOLBERG",
        "OLE INGRID BJØRN KJERSTI KNUT SOLVEIG TORBJØRN ÅSE GEIR RAGNHILD HÅKON MARIT STÅLE LIV JØRGEN ØYVIND",
        "OSLO BERGEN TRONDHEIM STAVANGER DRAMMEN FREDRIKSTAD KRISTIANSAND TROMSØ SANDNES ÅLESUND BODØ TØNSBERG HAUGESUND MOSS",
    ),
}
_SHARED = {"slk": "ces", "aze": "tur", "srp_latn": "hrv"}  # languages that write with another's pool

_TRANSLITERATION = {
    **dict(zip("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯІЇЄҐЈЉЊЋЂЏ", [
        "A", "B", "V", "G", "D", "E", "E", "ZH", "Z", "I", "I", "K", "L", "M", "N", "O", "P", "R", "S", "T", "U",
        "F", "KH", "TS", "CH", "SH", "SHCH", "IE", "Y", "", "E", "IU", "IA", "I", "I", "IE", "G", "J", "LJ", "NJ",
        "C", "DJ", "DZ"], strict=True)),
    **dict(zip("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ", [
        "A", "V", "G", "D", "E", "Z", "I", "TH", "I", "K", "L", "M", "N", "X", "O", "P", "R", "S", "T", "Y", "F",
        "CH", "PS", "O"], strict=True)),
    "Ø": "OE", "Æ": "AE", "Å": "AA", "Ł": "L", "Đ": "D", "ß": "SS", "Ə": "A", "Ħ": "H", "Ŧ": "T",
}  # fmt: skip


def pool(document: str) -> tuple[list[str], list[str], list[str]]:
    """The surnames, given names and places to draw a document's values from."""
    language = document_languages(document)[0]
    language = _SHARED.get(language, language)
    surnames, given, places = _POOLS.get(language, LATIN)
    return surnames.split(), given.split(), places.split()


def mrz_letters(text: str) -> str:
    """`text` in the capitals A-Z a machine-readable zone writes: transliterated, diacritics dropped."""
    out = []
    for character in text.upper():
        character = _TRANSLITERATION.get(character, character)
        for part in unicodedata.normalize("NFKD", character):
            if "A" <= part <= "Z" or part == " ":
                out.append(part)
    return "".join(out)
