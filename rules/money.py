"""Money as integer fen. Never a float.

Every amount inside the pipeline is an ``int`` number of fen (分, 0.01 CNY). Text on the wire
is a decimal string with at most two fractional digits ("1234.50"); an integer JSON number is
accepted as whole yuan. Rates are exact fractions, and an entitlement is rounded down to the fen,
so ``base × rate`` can never pay one fen more than the rate allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AMOUNT = re.compile(r"^(-)?(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?$")
_RATE = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")
# A sanity bound, not a policy figure: 10^15 yuan is more than any invoice; beyond it an
# amount is surely a unit or typing error upstream, and refusing it keeps sums well-defined.
MAX_ABS_FEN = 10**17


class AmountError(ValueError):
    """An amount that is not acceptable money; the message says how to write it."""


def parse_amount(value: object) -> int:
    """Wire amount (decimal string or integer yuan) -> int fen."""
    if isinstance(value, bool):
        raise AmountError("amount must be a decimal string such as \"1234.50\", not a boolean")
    if isinstance(value, int):
        fen = value * 100
    elif isinstance(value, float):
        raise AmountError(
            f"amount {value!r} is a fractional JSON number; floats are not money: "
            f"send it as a decimal string such as \"{value:.2f}\""
        )
    elif isinstance(value, str):
        match = _AMOUNT.match(value)
        if not match:
            raise AmountError(
                f"amount {value!r} is not a decimal string with at most 2 fractional digits "
                "(write it like \"1234.50\")"
            )
        sign, whole, fraction = match.groups()
        fen = int(whole) * 100 + int((fraction or "0").ljust(2, "0"))
        if sign:
            fen = -fen
    else:
        raise AmountError(f"amount must be a decimal string such as \"1234.50\", got {type(value).__name__}")
    if abs(fen) >= MAX_ABS_FEN:
        raise AmountError(f"amount {value!r} is out of range (at most 15 digits of yuan)")
    return fen


def format_fen(fen: int) -> str:
    """int fen -> "1234.50" (the wire form). String slicing: the engine formats several amounts a claim."""
    if fen >= 100:  # most amounts: no sign and no padding to handle
        digits = str(fen)
        return digits[:-2] + "." + digits[-2:]
    digits = str(fen if fen >= 0 else -fen).rjust(3, "0")
    return ("-" if fen < 0 else "") + digits[:-2] + "." + digits[-2:]


@dataclass(frozen=True, slots=True)
class Rate:
    """An exact share such as 60% = 60/100, written "0.60" in the policy file."""

    numerator: int
    denominator: int

    @classmethod
    def parse(cls, text: object) -> "Rate":
        if not isinstance(text, str):
            raise AmountError(f"a rate must be written as a quoted decimal such as \"0.60\", got {text!r}")
        match = _RATE.match(text)
        if not match:
            raise AmountError(f"rate {text!r} is not a decimal such as \"0.60\"")
        whole, fraction = match.groups()
        fraction = fraction or ""
        rate = cls(int(whole + fraction), 10 ** len(fraction))
        if rate.numerator > rate.denominator:
            raise AmountError(f"rate {text!r} is above 1: a subsidy never exceeds the expense")
        return rate

    def apply_floor(self, base_fen: int) -> int:
        """base × rate rounded down to the fen: never above the rate."""
        if base_fen <= 0:
            return 0
        return base_fen * self.numerator // self.denominator

    def __str__(self) -> str:
        """As written in the policy: 60/100 -> "0.60" (parse keeps the written denominator)."""
        places = len(str(self.denominator)) - 1
        whole, part = divmod(self.numerator, self.denominator)
        return f"{whole}.{part:0{places}d}" if places else str(whole)


def format_grouped(fen: int) -> str:
    """int fen -> "1,234,567.50": money for people to read (the wire form is format_fen's)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d}"
