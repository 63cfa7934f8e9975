"""Payee identifiers and their check characters.

USCC: Unified Social Credit Code, GB 32100-2015. Resident ID: GB 11643-1999.
A valid check character proves the code was not mistyped, not that the entity exists.
"""

from __future__ import annotations

from functools import lru_cache

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def uscc_check_character(first17: str) -> str:
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, _USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """None if ``code`` is a well-formed USCC, else what is wrong with it."""
    if len(code) != 18:
        return f"USCC {code!r} has {len(code)} characters; it must have 18"
    return _eighteen_character_uscc_problem(code)


# Cached because the same enterprises come back all year and intake checks every message; only
# for 18-character codes, so that a flood of huge strings cannot fill memory (a few MB at most).
@lru_cache(maxsize=1 << 14)
def _eighteen_character_uscc_problem(code: str) -> str | None:
    bad = sorted({ch for ch in code if ch not in _USCC_VALUE})
    if bad:
        return (
            f"USCC {code!r} contains {''.join(bad)!r}; allowed are digits and "
            "capital letters except I, O, S, V, Z"
        )
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        return f"USCC {code!r} fails its check character: the 18th character should be {expected!r} (GB 32100-2015)"
    return None


def resident_id_check_character(first17: str) -> str:
    return _ID_CHECK[sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS)) % 11]


def resident_id_problem(code: str) -> str | None:
    """None if ``code`` is a well-formed 18-digit resident ID number, else what is wrong."""
    if len(code) != 18 or not code[:17].isdigit() or not (code[17].isdigit() or code[17] == "X"):
        return f"person_id {code!r} must be 17 digits followed by a digit or X (GB 11643)"
    expected = resident_id_check_character(code[:17])
    if code[17] != expected:
        return f"person_id {code!r} fails its check digit: the 18th character should be {expected!r} (GB 11643)"
    return None
