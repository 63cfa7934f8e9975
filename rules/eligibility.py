"""Who may be paid (issue 25): the policy pays enterprises registered where it applies.

A USCC's characters 3-8 are the administrative division of the authority that registered the
enterprise (GB 32100-2015, 登记管理机关行政区划码). The policy file lists the prefixes of the
divisions whose enterprises its clauses may pay (``eligibility.registration_division_prefix``,
dated); a claim naming an enterprise registered elsewhere is declined, not rejected: the input
is valid, the policy just does not pay that party. Persons and teams carry no USCC.
"""

from __future__ import annotations

import datetime as dt

from rules.intake import Claim
from rules.policy import Policy


def registration_division(uscc: str) -> str:
    return uscc[2:8]


def ineligibility(policy: Policy, claim: Claim, day: dt.date) -> str | None:
    """Why the policy may not pay this claim's payee or beneficiary on ``day``, or None if it may.

    Both are checked: the payee receives the money, and when another party is paid (a compute
    voucher is settled with the provider) the beneficiary is whom the policy supports."""
    prefixes = policy.registration_divisions.at(day) if policy.registration_divisions is not None else None
    if prefixes is None:
        return None
    for role, party in (("payee", claim.payee), ("beneficiary", claim.beneficiary)):
        division = registration_division(party["id"])
        if party["kind"] == "enterprise" and not division.startswith(prefixes):
            where = " or ".join(f"{prefix}{'x' * (6 - len(prefix))}" for prefix in prefixes)
            return (f"the {role} {party['id']} is registered in division {division} (USCC characters 3-8), not in {where} "
                    f"where {policy.policy_id} pays enterprises; if the USCC is mistyped, publish the event again with the right one")
    return None
