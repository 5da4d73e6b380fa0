"""The one integer parser for numbers in requests (query parameters, headers, XML, ranges).

Python's int() and the regex \\d accept any Unicode digit ("٣" is 3, "²" passes isdigit() but
not int()) and int() refuses more than 4,300 digits with a ValueError: either way a client's
number could become a 500 or mean something it does not say. Numbers here are ASCII digits
only, at most `max_digits` of them (19 by default: every int64), and the caller turns a
refusal into its own S3 error.
"""

from __future__ import annotations

MAX_DIGITS = 19  # 9,223,372,036,854,775,807 is the largest int64


def parse_uint(
    text: str | None, *, max_digits: int = MAX_DIGITS, saturate: bool = False
) -> int | None:
    """The value of `text` if it is 1..max_digits ASCII digits, else None. With `saturate`, a
    longer run of ASCII digits is 10**max_digits instead (a number larger than any the caller
    allows, for limits that say "too large" rather than "not a number")."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text) > max_digits:
        return 10**max_digits if saturate else None
    return int(text)
