"""Money in fen, rates rounded down, and the check characters of payee identifiers.

Written from the contract ("amounts are decimal strings with at most 2 fractional digits; an
integer JSON number is accepted, a fractional JSON number is rejected") and the policy doc
(USCC alphabet, weights and examples; GB 11643 resident IDs).
"""

from __future__ import annotations

import json
from decimal import ROUND_FLOOR, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.identifiers import (
    USCC_ALPHABET,
    resident_id_check_character,
    resident_id_problem,
    uscc_check_character,
    uscc_problem,
)
from rules.money import AmountError, Rate, format_fen, format_grouped, parse_amount

# --- amounts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire, fen",
    [
        ("0", 0),
        ("0.01", 1),
        ("0.1", 10),
        ("0.10", 10),
        ("1", 100),
        ("1234.50", 123450),
        ("5000000.00", 500000000),
        ("100000000.00", 10000000000),
        ("-400.00", -40000),  # a refund may be sent negative; intake decides where that is allowed
    ],
)
def test_parse_amount_decimal_strings(wire, fen):
    assert parse_amount(wire) == fen


@pytest.mark.parametrize("value, fen", [(0, 0), (1, 100), (1234, 123400), (5_000_000, 500_000_000)])
def test_integer_json_number_is_whole_yuan(value, fen):
    assert parse_amount(value) == fen
    # as it arrives from json.loads
    assert parse_amount(json.loads(str(value))) == fen


@pytest.mark.parametrize("text", ["1234.5", "0.1", "1.0", "100.00", "1e3"])
def test_fractional_json_number_is_rejected(text):
    value = json.loads(text)
    assert isinstance(value, float)
    with pytest.raises(AmountError, match="not money|fractional"):
        parse_amount(value)


@pytest.mark.parametrize("wire", ["1.001", "0.005", "1234.567", "5000000.000"])
def test_more_than_two_decimals_rejected(wire):
    with pytest.raises(AmountError, match="at most 2 fractional digits"):
        parse_amount(wire)


@pytest.mark.parametrize(
    "wire", ["", " 1.00", "1.00 ", "1,000.00", "+1.00", "01.00", ".50", "1.", "1e3", "NaN", "Infinity", "１２"]
)
def test_malformed_amount_strings_rejected(wire):
    with pytest.raises(AmountError):
        parse_amount(wire)


@pytest.mark.parametrize("value", [True, False, None, [1], {"amount": 1}])
def test_non_money_types_rejected(value):
    with pytest.raises(AmountError):
        parse_amount(value)


def test_absurd_amount_rejected():
    with pytest.raises(AmountError, match="out of range"):
        parse_amount("1" + "0" * 15 + ".00")
    assert parse_amount("9" * 15 + ".99") == int("9" * 15 + "99")


@pytest.mark.parametrize(
    "fen, wire",
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (99, "0.99"), (100, "1.00"), (123450, "1234.50"), (-1, "-0.01"), (-24000, "-240.00")],
)
def test_format_fen(fen, wire):
    assert format_fen(fen) == wire


@pytest.mark.parametrize(
    "fen, shown",
    [(0, "0.00"), (5, "0.05"), (99999, "999.99"), (100000, "1,000.00"), (75000000, "750,000.00"), (10000000000, "100,000,000.00"), (-14618, "-146.18"), (-123456789, "-1,234,567.89")],
)
def test_format_grouped_for_people(fen, shown):
    assert format_grouped(fen) == shown
    assert parse_amount(shown.replace(",", "")) == fen


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10**17) + 1, max_value=10**17 - 1))
def test_format_then_parse_round_trips(fen):
    assert parse_amount(format_fen(fen)) == fen


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False))
def test_parse_then_format_matches_decimal(amount):
    text = f"{amount:.2f}"
    assert format_fen(parse_amount(text)) == text
    assert Decimal(parse_amount(text)) / 100 == amount


# --- rates ----------------------------------------------------------------------------


def test_rate_parse_is_exact():
    assert Rate.parse("0.60") == Rate(60, 100)
    assert Rate.parse("0.3") == Rate(3, 10)
    assert Rate.parse("1") == Rate(1, 1)


@pytest.mark.parametrize("bad", [0.6, 1, "60%", "1.01", "-0.1", ".6", ""])
def test_rate_parse_rejects(bad):
    with pytest.raises(AmountError):
        Rate.parse(bad)


@pytest.mark.parametrize(
    "rate, base, expected",
    [
        ("0.60", 1, 0),  # 0.006 fen -> nothing
        ("0.60", 2, 1),  # 0.012 -> 0.01
        ("0.60", 3, 1),  # 0.018 -> 0.01: rounded down, never up
        ("0.60", 5, 3),
        ("0.30", 3, 0),  # 0.009 -> 0.00
        ("0.30", 4, 1),
        ("0.60", 833333334, 500000000),  # 8,333,333.34 * 60% = 5,000,000.004 -> 5,000,000.00
        ("0.10", 999, 99),
        ("0.60", 0, 0),
        ("0.60", -100, 0),  # never a negative entitlement
    ],
)
def test_rate_floor_examples(rate, base, expected):
    assert Rate.parse(rate).apply_floor(base) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["0.60", "0.30", "0.10", "0.50", "0.333", "0.07", "1", "0"]),
    st.integers(min_value=0, max_value=10**15),
)
def test_rate_floor_never_above_the_rate(rate_text, base):
    rate = Rate.parse(rate_text)
    got = rate.apply_floor(base)
    exact = Decimal(base) * Decimal(rate_text)
    assert got == int(exact.to_integral_value(rounding=ROUND_FLOOR))
    assert got <= exact < got + 1  # at most one fen below, never above


# --- USCC (GB 32100-2015) -------------------------------------------------------------

POLICY_EXAMPLES = ["91110000600037341L", "91110108551385082Q", "91370000728611939A", "531000005000160090", "9144030071526726XG"]
WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def independent_uscc_check(first17: str) -> str:
    """The rule as written in the policy doc, independently of rules.identifiers."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    check = 31 - sum(alphabet.index(c) * w for c, w in zip(first17, WEIGHTS)) % 31
    return alphabet[0 if check == 31 else check]


@pytest.mark.parametrize("code", POLICY_EXAMPLES)
def test_policy_uscc_examples_are_valid(code):
    assert independent_uscc_check(code[:17]) == code[17]
    assert uscc_check_character(code[:17]) == code[17]
    assert uscc_problem(code) is None


def test_uscc_alphabet_excludes_ambiguous_letters():
    assert len(USCC_ALPHABET) == 31
    assert not set("IOSVZ") & set(USCC_ALPHABET)


@pytest.mark.parametrize("code", POLICY_EXAMPLES)
def test_every_single_character_substitution_is_rejected(code):
    # The check character detects every single-character error.
    for i in range(18):
        for ch in USCC_ALPHABET:
            if ch != code[i]:
                mutated = code[:i] + ch + code[i + 1 :]
                assert uscc_problem(mutated) is not None, mutated


@pytest.mark.parametrize("code", POLICY_EXAMPLES)
def test_adjacent_transpositions_are_rejected(code):
    for i in range(17):
        if code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert uscc_problem(swapped) is not None, swapped


@pytest.mark.parametrize(
    "code, fragment",
    [
        ("91110000600037341", "17 characters"),
        ("91110000600037341LL", "19 characters"),
        ("91110000600037341l", "contains"),  # lower case
        ("9111000060003734IL", "contains"),  # I is not in the alphabet
        ("91110000600037341O", "contains"),
        ("91110000600037341S", "contains"),
        ("91110000600037341M", "check character"),
        ("", "0 characters"),
    ],
)
def test_uscc_problems_are_explained(code, fragment):
    problem = uscc_problem(code)
    assert problem is not None and fragment in problem


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_check_matches_the_written_rule(first17):
    check = independent_uscc_check(first17)
    assert uscc_check_character(first17) == check
    assert uscc_problem(first17 + check) is None


# --- resident ID (GB 11643-1999) --------------------------------------------------------

# By hand, weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, check table "10X98765432" (index = sum mod 11):
#
#   11010519491231002?  digits 1 1 0 1 0 5 1 9 4 9 1 2 3 1 0 0 2
#     7 + 9 + 0 + 5 + 0 + 20 + 2 + 9 + 24 + 27 + 7 + 18 + 30 + 5 + 0 + 0 + 4 = 167
#     167 mod 11 = 2 -> "X"                      => 11010519491231002X
#
#   51010419900101123?  digits 5 1 0 1 0 4 1 9 9 0 0 1 0 1 1 2 3
#     35 + 9 + 0 + 5 + 0 + 16 + 2 + 9 + 54 + 0 + 0 + 9 + 0 + 5 + 8 + 8 + 6 = 166
#     166 mod 11 = 1 -> "0"                      => 510104199001011230
HAND_IDS = ["11010519491231002X", "510104199001011230"]


@pytest.mark.parametrize("code", HAND_IDS)
def test_hand_computed_resident_ids_are_valid(code):
    assert resident_id_check_character(code[:17]) == code[17]
    assert resident_id_problem(code) is None


@pytest.mark.parametrize("code", HAND_IDS)
def test_resident_id_single_digit_errors_rejected(code):
    for i in range(17):
        for d in "0123456789":
            if d != code[i]:
                mutated = code[:i] + d + code[i + 1 :]
                assert resident_id_problem(mutated) is not None, mutated
    for check in "0123456789X":
        if check != code[17]:
            assert "check digit" in resident_id_problem(code[:17] + check)


@pytest.mark.parametrize(
    "code", ["11010519491231002", "11010519491231002XX", "11010519491231002x", "1101051949123100AX", "X10105194912310020", ""]
)
def test_malformed_resident_ids_rejected(code):
    assert "GB 11643" in resident_id_problem(code)
