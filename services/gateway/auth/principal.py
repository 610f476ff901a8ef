"""Who is making a request: the authenticated subject, its name and its roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.gateway.auth.roles import ALL_ROLES, Role


@dataclass(frozen=True, slots=True)
class Principal:
    """The acting user. `name` is what audit trails record; `via` says how it signed in:
    "anonymous" (auth off), "token" (the shared GATEWAY_TOKEN, as a bearer header or a
    cookie session made from it: it names no person), "jwt" (a bearer JWT) or "oidc"
    (a cookie session from an OIDC sign-in). Cookie sessions carry a `csrf_token`."""

    subject: str
    name: str
    roles: frozenset[Role]
    via: str
    # When the credential stops being valid (a session or a JWT), if it does.
    expires_at: datetime | None = None
    # The session's CSRF token (cookie sessions only).
    csrf_token: str | None = None

    def has(self, role: Role) -> bool:
        return role in self.roles

    @property
    def role_names(self) -> list[str]:
        return sorted((role.label for role in self.roles), key=lambda n: Role[n.upper()])


ANONYMOUS = Principal(subject="anonymous", name="anonymous", roles=ALL_ROLES, via="anonymous")
