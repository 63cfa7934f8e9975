"""The console's operators: names, roles and password hashes in the ledger database
(``console_users``), and the append-only record of what they did (``operator_actions``, each
action an entry of the ledger's hash chain: sinks/ledger/operator_actions.py).

They live in the ledger's database, not in a file beside it: the console may run on another
machine than the ledger (docker-compose), the reader role can read them with everything else,
and an operator's action is recorded in the same database as the money it concerns.

Roles rank ``viewer < maker < checker < admin``; each may do what the ones before it may. The
API other modules use is small: :func:`role_of` (a user's role) and :func:`require` (a route
that needs at least a role).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection, Engine

from sinks.ledger import Ledger
from sinks.ledger.schema import OPERATOR_ROLES, console_users

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH = 12
# scrypt at n=2^15, r=8: 32 MiB and some 0.1 s a guess (RFC 7914's interactive-login figures raised)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# where the guard puts the request's Operator (None: nobody logged in)
OPERATOR_KEY = web.RequestKey("operator", object)


class UserError(Exception):
    """A user that cannot be added: a bad name, role or password, or a name taken."""


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: str
    break_glass: bool = False  # the shared admin token, not a named user


def rank(role: str) -> int:
    return OPERATOR_ROLES.index(role)


# -- passwords -------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_matches(stored: str, password: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    computed = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024, dklen=32)
    return hmac.compare_digest(computed, base64.b64decode(digest))


@functools.cache
def _nobody() -> str:
    """A hash no password matches: an unknown name costs a login the same time as a known one."""
    return hash_password(secrets.token_urlsafe(32))


# -- the store -------------------------------------------------------------------------------


def add_user(engine: Engine, name: str, role: str, password: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"user name {name!r}: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit")
    if role not in OPERATOR_ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(OPERATOR_ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    row = {"name": name, "role": role, "password_hash": hash_password(password), "created_at": _now()}
    with engine.begin() as conn:
        if conn.execute(sa.select(console_users.c.name).where(console_users.c.name == name)).first():
            raise UserError(f"user {name!r} exists already")
        conn.execute(console_users.insert(), row)


def has_users(conn: Connection) -> bool:
    """Whether any operator was added; a ledger older than its console_users table has none."""
    if not sa.inspect(conn).has_table(console_users.name):
        return False
    return conn.execute(sa.select(console_users.c.name).limit(1)).first() is not None


def role_of(conn: Connection | Engine, name: str) -> str | None:
    """The role of the user ``name``, or None when there is no such user."""
    query = sa.select(console_users.c.role).where(console_users.c.name == name)
    if isinstance(conn, Engine):
        with conn.connect() as connection:
            return connection.execute(query).scalar_one_or_none()
    return conn.execute(query).scalar_one_or_none()


def authenticate(conn: Connection, name: str, password: str) -> Operator | None:
    row = conn.execute(sa.select(console_users.c.role, console_users.c.password_hash).where(console_users.c.name == name)).first()
    if not password_matches(row.password_hash if row else _nobody(), password) or row is None:
        return None
    return Operator(name, row.role)


def record_action(engine: Engine, operator: Operator, action: str, subject: str, reason: str) -> dict[str, Any]:
    """Append the action to ``operator_actions`` and, with it, to the ledger's hash chain."""
    return Ledger(engine).record_operator_action(operator.name, operator.role, action, subject, reason)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


# -- routes ----------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require(role: str) -> Callable[[Handler], Handler]:
    """A route for operators holding ``role`` or a higher one; others are answered 403 with why."""
    assert role in OPERATOR_ROLES, role

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            operator = request.get(OPERATOR_KEY)
            if not isinstance(operator, Operator):
                raise web.HTTPUnauthorized(text=json.dumps({"error": "log in first"}), content_type="application/json")
            if rank(operator.role) < rank(role):
                reason = f"{operator.name} is a {operator.role}: this needs the role {role} or higher"
                raise web.HTTPForbidden(text=json.dumps({"error": reason}, ensure_ascii=False), content_type="application/json")
            return await handler(request)

        return guarded

    return decorate
