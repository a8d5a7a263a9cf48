"""Numbers in file and folder names: ASCII digits only.

``str.isdigit()`` is true for '²' and '١٢', which ``int()`` refuses or reads as 12: a
picture named ``²³.jpg`` or an annotation of ``².jpg`` must be one line naming the name,
not a ValueError that stops the whole dataset.
"""

from __future__ import annotations

MAX_DIGITS = 18  # longer runs of digits are no frame or picture number (and int() of thousands is slow)


def ascii_number(text: str) -> int | None:
    """Return the number `text` spells in ASCII digits ('007' -> 7); None for anything else ('²', '1.5', '')."""
    if 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None
