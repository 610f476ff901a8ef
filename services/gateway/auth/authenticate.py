"""Who is asking: one function for every way in, usable from FastAPI and plain ASGI.

`Authenticator.authenticate(connection)` takes a Starlette `HTTPConnection` (a FastAPI
`Request`, or `HTTPConnection(scope)` in a lean ASGI path such as a hand-written event
stream) and returns the `Principal`, or raises `AuthError` (401/403/429) with a clear
message. Role checks are separate (`require`), so any path can apply them too.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from services.gateway.auth.principal import ANONYMOUS, Principal
from services.gateway.auth.roles import ALL_ROLES, Role
from shared.settings import GatewaySettings

log = logging.getLogger(__name__)

SHARED_TOKEN_SUBJECT = "shared-token"


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


class Authenticator:
    """The gateway's auth modes: none, the shared token."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return self.settings.gateway_token is not None

    @property
    def mode(self) -> str:
        return "token" if self.settings.gateway_token is not None else "none"

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        given = _bearer(connection)
        if given is None:
            given = connection.query_params.get("token")
        if given is None:
            raise unauthorized(
                "missing or invalid token: send 'Authorization: Bearer <token>' or ?token=<token>"
            )
        principal = self._shared_token(given)
        if principal is None:
            raise unauthorized(
                "missing or invalid token: send 'Authorization: Bearer <token>' or ?token=<token>"
            )
        return principal

    def _shared_token(self, given: str) -> Principal | None:
        expected = self.settings.gateway_token
        if expected is None or not secrets.compare_digest(given.encode(), expected.encode()):
            return None
        # One token cannot tell people apart: whoever holds it is the installation's admin.
        return Principal(
            subject=SHARED_TOKEN_SUBJECT, name=SHARED_TOKEN_SUBJECT, roles=ALL_ROLES, via="token"
        )


def _bearer(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
