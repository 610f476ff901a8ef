"""Who is asking: one function for every way in, usable from FastAPI and plain ASGI.

`Authenticator.authenticate(connection)` takes a Starlette `HTTPConnection` (a FastAPI
`Request`, or `HTTPConnection(scope)` in a lean ASGI path such as a hand-written event
stream) and returns the `Principal`, or raises `AuthError` (401/403/429) with a clear
message. Role checks are separate (`require`), so any path can apply them too.

Ways in, first match wins:
1. the dashboard's session cookie (from a shared-token exchange or an OIDC sign-in);
2. `Authorization: Bearer <JWT>` verified against the issuer's JWKS (OIDC_ISSUER set);
3. `Authorization: Bearer <GATEWAY_TOKEN>` (the shared token, for scripts);
4. nothing configured: everyone is the anonymous admin (a loud warning at start-up).
A secret is never read from the URL.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from services.gateway.auth.oidc import Issuer, IssuerUnavailable, TokenRejected
from services.gateway.auth.principal import ANONYMOUS, Principal
from services.gateway.auth.roles import ALL_ROLES, Role
from services.gateway.auth.sessions import CSRF_HEADER, SESSION_COOKIE, load_session
from shared.settings import GatewaySettings

log = logging.getLogger(__name__)

SHARED_TOKEN_SUBJECT = "shared-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class AuthError(Exception):
    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


def unauthorized(detail: str) -> AuthError:
    return AuthError(401, detail, {"WWW-Authenticate": "Bearer"})


def require(principal: Principal, role: Role) -> Principal:
    """`principal` if it holds `role`, else a 403 naming the missing role."""
    if not principal.has(role):
        raise AuthError(403, f"this needs the {role.label} role")
    return principal


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


class FailureLimiter:
    """Failed sign-ins and token checks per client address, in a moving one-minute window."""

    def __init__(self, per_minute: int) -> None:
        self._limit = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, address: str) -> None:
        if not self._limiter.test(self._limit, address):
            raise AuthError(
                429, "too many failed sign-in attempts; wait a minute", {"Retry-After": "60"}
            )

    def failed(self, address: str) -> None:
        self._limiter.hit(self._limit, address)


class Authenticator:
    """The gateway's auth modes: none, the shared token, OIDC (and token + OIDC)."""

    def __init__(
        self,
        settings: GatewaySettings,
        pool: Callable[[], asyncpg.Pool | None],
        issuer: Issuer | None = None,
    ) -> None:
        self.settings = settings
        self._pool = pool
        self.issuer = issuer or (Issuer(settings) if settings.oidc_enabled else None)
        self.failures = FailureLimiter(settings.auth_failures_per_minute)

    @property
    def enabled(self) -> bool:
        return self.settings.gateway_token is not None or self.issuer is not None

    @property
    def mode(self) -> str:
        modes = []
        if self.settings.gateway_token is not None:
            modes.append("token")
        if self.issuer is not None:
            modes.append("oidc")
        return "+".join(modes) or "none"

    async def aclose(self) -> None:
        if self.issuer is not None:
            await self.issuer.aclose()

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = await self.session(cookie)
            if principal is not None:
                check_csrf(connection, principal)
                return principal
        bearer = _bearer(connection)
        if bearer is not None:
            return await self.bearer(bearer, client_address(connection))
        if cookie:
            raise unauthorized("your session has expired or ended: sign in again")
        raise unauthorized(f"sign in first ({self.how_to_sign_in()})")

    def how_to_sign_in(self) -> str:
        ways = []
        if self.issuer is not None:
            ways.append("the dashboard's sign-in, or 'Authorization: Bearer <JWT>'")
        if self.settings.gateway_token is not None:
            ways.append("'Authorization: Bearer <token>'")
        return " or ".join(ways)

    async def session(self, cookie: str) -> Principal | None:
        pool = self._pool()
        if pool is None:
            raise AuthError(503, "database not connected")
        return await load_session(pool, cookie)

    async def bearer(self, token: str, address: str) -> Principal:
        """The principal for a bearer credential (a JWT or the shared token)."""
        self.failures.check(address)
        try:
            return await self._bearer_principal(token)
        except AuthError as error:
            if error.status == 401:
                self.failures.failed(address)
                log.warning(
                    "rejected credential", extra={"client": address, "reason": error.detail}
                )
            raise

    async def _bearer_principal(self, token: str) -> Principal:
        shared = self.shared_token(token)
        if shared is not None:
            return shared
        if self.issuer is not None and token.count(".") == 2:
            audience = self.settings.expected_audience
            if audience is None:
                raise AuthError(503, "OIDC_AUDIENCE / OIDC_CLIENT_ID is not configured")
            try:
                claims = await self.issuer.verify(token, audience=audience)
            except TokenRejected as exc:
                raise unauthorized(str(exc)) from None
            except IssuerUnavailable as exc:
                log.error("cannot verify tokens: issuer unavailable", extra={"error": str(exc)})
                raise AuthError(503, "the identity provider cannot be reached") from None
            return self.issuer.principal(claims, via="jwt")
        raise unauthorized("invalid token")

    def shared_token(self, given: str) -> Principal | None:
        expected = self.settings.gateway_token
        if expected is None or not secrets.compare_digest(given.encode(), expected.encode()):
            return None
        # One token cannot tell people apart: whoever holds it is the installation's admin.
        return Principal(
            subject=SHARED_TOKEN_SUBJECT, name=SHARED_TOKEN_SUBJECT, roles=ALL_ROLES, via="token"
        )


def check_csrf(connection: HTTPConnection, principal: Principal) -> None:
    """A cookie is sent by the browser on its own, so a state change made with one must
    also carry the session's CSRF token in a header (which another site cannot read or
    set); bearer credentials are not ambient and need none."""
    method = connection.scope.get("method", "GET")
    if method in SAFE_METHODS or principal.csrf_token is None:
        return
    given = connection.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(given.encode(), principal.csrf_token.encode()):
        raise AuthError(403, f"missing or wrong {CSRF_HEADER} header (CSRF protection)")


def _bearer(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
