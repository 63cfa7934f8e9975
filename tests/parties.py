"""The parties of test messages, in one place: valid identifiers made from a number, their check
characters computed by the production code (rules/identifiers.py), and the party objects of the
wire contract. Importable as ``parties`` from any test (tests/ is on sys.path through its conftest).

    uscc(7)              '915101000000000007' + its check character (kind 0: enterprises, buyers)
    uscc(1, kind=1)      another range of the same scheme (the scenarios' providers 1, vendors 2)
    uscc(7, division="110000")  the same, registered in Beijing (the policy pays only Chengdu's 5101xx)
    resident_id(3)       '51010419900100003' + its check digit
    enterprise(7)        {"uscc": uscc(7), "name": "企业7"}; person(3), team("UESTC-AI-LAB") alike
"""

from __future__ import annotations

from rules.identifiers import resident_id_check_character, uscc_check_character


def complete_uscc(first17: str) -> str:
    """``first17`` followed by its USCC check character (GB 32100)."""
    return first17 + uscc_check_character(first17)


def uscc(n: int, kind: int = 0, division: str = "510100") -> str:
    """The valid USCC numbered ``n`` (0 ≤ n < 10⁸) in range ``kind`` (0-9): 91, the registration
    ``division`` (GB/T 2260; Chengdu's 510100 unless a test is about another), kind, n on 8 digits."""
    return complete_uscc(f"91{division}{kind}{n:08d}")


def resident_id(n: int) -> str:
    """The valid resident ID numbered ``n`` (0 ≤ n < 10⁵): born 1990-01 in Chengdu, n, check digit (GB 11643)."""
    first17 = f"510104199001{n:05d}"
    return first17 + resident_id_check_character(first17)


def enterprise(n: int, kind: int = 0, name: str | None = None, division: str = "510100") -> dict[str, str]:
    return {"uscc": uscc(n, kind, division), "name": f"企业{n}" if name is None else name}


def person(n: int, name: str | None = None) -> dict[str, str]:
    return {"person_id": resident_id(n), "name": f"个人{n}" if name is None else name}


def team(ref: str, name: str | None = None) -> dict[str, str]:
    return {"team_ref": ref, "name": f"团队{ref}" if name is None else name}
