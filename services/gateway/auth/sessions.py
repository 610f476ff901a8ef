"""Cookie sessions stored in PostgreSQL: created at sign-in, checked per request, ended
at sign-out or expiry. The cookie carries 256 random bits; the table keeps their hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.gateway import queries
from services.gateway.auth.principal import Principal
from services.gateway.auth.roles import Role, parse_role

SESSION_COOKIE = "smokesignal_session"
CSRF_HEADER = "X-CSRF-Token"


def _hash(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


@dataclass(frozen=True)
class NewSession:
    cookie_value: str
    principal: Principal


async def create_session(
    pool: asyncpg.Pool, *, subject: str, name: str, roles: frozenset[Role], via: str, ttl_s: float
) -> NewSession:
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
    async with pool.acquire() as conn, conn.transaction():
        # Expired rows go here, on sign-in, not in a background task.
        await conn.execute(queries.DELETE_EXPIRED_SESSIONS_SQL)
        await conn.execute(
            queries.INSERT_SESSION_SQL,
            _hash(raw),
            subject,
            name,
            [role.label for role in sorted(roles)],
            via,
            csrf,
            expires_at,
        )
    principal = Principal(
        subject=subject,
        name=name,
        roles=roles,
        via=via,
        expires_at=expires_at,
        csrf_token=csrf,
    )
    return NewSession(raw, principal)


async def load_session(pool: asyncpg.Pool, raw: str) -> Principal | None:
    """The signed-in principal, or None for an unknown or expired session."""
    if not raw or len(raw) > 200:
        return None
    row = await pool.fetchrow(
        queries.LOAD_SESSION_SQL,
        _hash(raw),
    )
    if row is None:
        return None
    roles = frozenset(role for role in map(parse_role, row["roles"]) if role is not None)
    return Principal(
        subject=row["subject"],
        name=row["name"],
        roles=roles,
        via=row["via"],
        expires_at=row["expires_at"],
        csrf_token=row["csrf_token"],
    )


async def delete_session(pool: asyncpg.Pool, raw: str) -> None:
    await pool.execute(queries.DELETE_SESSION_SQL, _hash(raw))


@dataclass(frozen=True)
class PendingLogin:
    code_verifier: str
    nonce: str
    return_to: str
    popup: bool


async def save_pending_login(
    pool: asyncpg.Pool, state: str, login: PendingLogin, ttl_s: float
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.DELETE_EXPIRED_PENDING_LOGINS_SQL)
        await conn.execute(
            queries.INSERT_PENDING_LOGIN_SQL,
            _hash(state),
            login.code_verifier,
            login.nonce,
            login.return_to,
            login.popup,
            ttl_s,
        )


async def take_pending_login(pool: asyncpg.Pool, state: str) -> PendingLogin | None:
    """The sign-in that `state` belongs to, removed so it cannot be used twice."""
    if not state or len(state) > 200:
        return None
    row = await pool.fetchrow(
        queries.TAKE_PENDING_LOGIN_SQL,
        _hash(state),
    )
    if row is None:
        return None
    return PendingLogin(row["code_verifier"], row["nonce"], row["return_to"], row["popup"])
