"""Text-field metrics, on hand-made cases checked against the reference's definitions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midvbatch.scoring.text import (
    Combiner,
    accuracy_after_frames,
    combine_characters,
    combine_majority,
    field_type,
    levenshtein,
    ngld,
    normalize,
    score_field,
)


def test_normalize_upper_cases_and_turns_the_letter_o_into_zero():
    assert normalize("Bob o'Neil") == "B0B 0'NEIL"
    assert normalize("straße") == "STRASSE"  # upper-casing changes the length
    assert normalize("") == ""


@pytest.mark.parametrize(
    "a, b, d",
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "ab", 2),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("abc", "abc", 0),
        ("ab", "ba", 2),
    ],
)
def test_levenshtein(a, b, d):
    assert levenshtein(a, b) == d == levenshtein(b, a)


def test_scores_follow_the_reference():
    s = score_field("01-01-198O", "01-01-1980")  # O and 0 are one after normalization
    assert (s.correct, s.distance, s.ngld, s.cer) == (True, 0, 0.0, 0.0)
    s = score_field("ivanov", "IVANOVA")  # case does not count; one deletion
    assert (s.correct, s.distance) == (False, 1)
    assert s.ngld == pytest.approx(2 * 1 / (6 + 7 + 1))
    assert s.cer == pytest.approx(1 / 7)
    # German sharp s: normalized "STRASSE" vs "STRASSE": equal; NGLD's lengths are the strings as given
    s = score_field("straße", "STRASSE")
    assert (s.correct, s.distance, s.ngld) == (True, 0, 0.0)
    s = score_field("strase", "straße")  # STRASE vs STRASSE: L = 1, lengths 6 and 6
    assert s.distance == 1 and s.ngld == pytest.approx(2 / (6 + 6 + 1)) and s.cer == pytest.approx(1 / 6)
    assert ngld("", "") == 0.0 and score_field("", "").correct
    s = score_field("AB", "")
    assert (s.correct, s.distance, s.ngld, s.cer) == (False, 2, 1.0, 1.0)
    s = score_field("", "AB")
    assert (s.distance, s.ngld, s.cer) == (2, 1.0, 1.0)


@pytest.mark.parametrize(
    "value, kind",
    [
        ("01.02.1980", "date"),
        ("1980-02-01", "date"),
        ("12 JAN 1975", "date"),
        ("05 MAR/MAR 90", "date"),
        ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "mrz"),
        ("L898902C36UTO7408122F1204159ZE184226B<<<<<10", "mrz"),
        ("AB1234567", "number"),
        ("123 456 789", "number"),
        ("X12-3456", "number"),
        ("ERIKSSON", "name"),
        ("Anna Maria", "name"),
        ("O'Neil-Smith", "name"),
        ("Müller", "name"),
        ("ЕКАТЕРИНБУРГ", "other"),
        ("MO", "name"),
        ("*", "other"),
    ],
)
def test_field_type_from_the_value_shape(value, kind):
    assert field_type(value) == kind


def test_majority_and_best_confidence_combinations():
    from midvbatch.scoring.text import combine_best, combine_majority

    assert combine_majority(["IVAN0V", "ivanov", "IVANOW"]) == "IVAN0V"  # two of three once normalized
    assert combine_majority(["A", "B"]) == "A" and combine_majority([]) is None  # a tie: the first reached
    assert combine_best([("A", 0.2), ("B", 0.9), ("C", 0.9)]) == "B"
    assert combine_best([("A", None), ("B", 0.1)]) == "B" and combine_best([]) is None


def test_accuracy_after_frames_is_the_published_curve():
    from midvbatch.scoring.text import accuracy_after_frames

    clips = [
        ([("X", 0.9), ("AB", 0.5), ("AB", 0.4)], "AB"),  # wrong first, right once two agree
        ([("AB", 0.3), ("AC", 0.8)], "ab"),  # right at once; best-confidence turns wrong at frame 2
        ([], "AB"),  # nothing read: wrong throughout
    ]
    assert accuracy_after_frames(clips, "majority") == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert accuracy_after_frames(clips, "best") == pytest.approx([1 / 3, 0.0, 0.0])
    with pytest.raises(ValueError, match="unknown combination"):
        accuracy_after_frames(clips, "rover")


def test_text_metrics_character_vote_outvotes_errors_in_different_places():
    readings = [("SM1TH", None), ("SMIT4", None), ("5MITH", None)]
    assert combine_majority([t for t, _ in readings]) == "SM1TH"  # three different strings: the first wins
    assert combine_characters(readings) == "SMITH"  # each position has two of three right


def test_text_metrics_character_vote_keeps_to_the_most_common_length_and_weighs_confidence():
    assert combine_characters([("SMITHH", 1.0), ("SMIT", 0.9), ("SMITH", 0.2), ("SNITH", 0.1)]) == "SMITH"
    # one confident reading outweighs two unsure ones
    assert combine_characters([("ANNA", 0.1), ("ANNE", 0.9), ("ANNA", 0.1)]) == "ANNE"
    assert combine_characters([("anno", None)]) == "ANN0"  # normalized: compared the way the metrics compare
    assert combine_characters([]) is None


def test_text_metrics_character_vote_curve():
    truth = "12.01.1976"
    readings = [("12.01.1978", 0.5), ("13.01.1976", 0.5), ("12.07.1976", 0.5)]
    assert accuracy_after_frames([(readings, truth)], "characters") == [0.0, 0.0, 1.0]
    assert accuracy_after_frames([(readings, truth)], "majority") == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "value, name, kind",
    [
        ("KOVACS", "surname", "name"),
        ("ΑΘΗΝΑ", "name", "other"),  # a name, but not in Latin letters
        ("P<ALBKOVACS<<LUCA", "mrz_line0", "mrz"),  # shorter than an MRZ line: the name says it
        ("19.01.1975", "birth_date", "date"),
        ("AB 123", "number", "number"),
        ("AB 123", "id_number", "number"),
        ("SMITH", "field01", "name"),  # MIDV-500's names say nothing: the value decides
    ],
)
def test_text_metrics_field_type_from_the_name_where_the_dataset_gives_one(value, name, kind):
    assert field_type(value, name) == kind


@pytest.mark.parametrize("value", ["M", "F", "P"])
def test_text_metrics_a_lone_letter_is_not_a_name(value):
    assert field_type(value) == "other" and field_type(value, "name") == "other"


def _vote_by_hand(readings):
    """The character vote written out from its definition, for the property test below."""
    from midvbatch.scoring.text import WEIGHT_UNIT

    weighed = [(normalize(t), WEIGHT_UNIT if c is None else max(0, round(c * WEIGHT_UNIT))) for t, c in readings]
    lengths = {}
    for text, _ in weighed:
        lengths[len(text)] = lengths.get(len(text), 0) + 1
    length = next(n for n in lengths if lengths[n] == max(lengths.values()))
    voters = [(t, w) for t, w in weighed if len(t) == length]
    out = ""
    for i in range(length):
        weights = {}
        for text, weight in voters:
            weights[text[i]] = weights.get(text[i], 0) + weight
        out += next(text[i] for text, _ in voters if weights[text[i]] == max(weights.values()))
    return out


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.text("AB0o", min_size=1, max_size=4), st.sampled_from([None, 0.1, 0.5, 0.9])),
        min_size=1,
        max_size=9,
    )
)
def test_text_metrics_running_combination_equals_the_definitions_after_every_reading(readings):
    combiner = Combiner()
    for k, (text, confidence) in enumerate(readings, 1):
        combiner.add(text, confidence)
        first = readings[:k]
        counts = {}
        for t, _ in first:
            counts[normalize(t)] = counts.get(normalize(t), 0) + 1
        top = next(key for key in counts if counts[key] == max(counts.values()))
        assert combiner.result("majority") == next(t for t, _ in first if normalize(t) == top)
        best = max(range(k), key=lambda i: (-1 if first[i][1] is None else first[i][1], -i))
        assert combiner.result("best") == first[best][0]
        assert combiner.result("characters") == _vote_by_hand(first)


def test_char_diff_is_a_shortest_alignment_that_tells_the_edits_apart():
    from midvbatch.scoring.text import char_diff, levenshtein

    assert char_diff("NIELSEN", "NIELS#N")[5] == ("~", "E", "#")
    assert char_diff("ABC", "AXBC") == [("=", "A", "A"), ("+", "", "X"), ("=", "B", "B"), ("=", "C", "C")]
    assert char_diff("ABC", "AC") == [("=", "A", "A"), ("-", "B", ""), ("=", "C", "C")]
    assert char_diff("", "") == [] and char_diff("", "A") == [("+", "", "A")] and char_diff("A", "") == [("-", "A", "")]
    rng = random.Random(3)
    for _ in range(500):
        a = "".join(rng.choice("AB0O") for _ in range(rng.randint(0, 9)))
        b = "".join(rng.choice("AB0O") for _ in range(rng.randint(0, 9)))
        ops = char_diff(a, b)
        assert sum(op != "=" for op, _, _ in ops) == levenshtein(a, b)
        assert "".join(t for _, t, _ in ops) == a and "".join(r for _, _, r in ops) == b
