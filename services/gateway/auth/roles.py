"""The three roles and how a token's roles claim maps onto them."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any


class Role(enum.IntEnum):
    """Ordered: each role includes everything the roles below it may do."""

    VIEWER = 1  # read the API, watch the stream, see images
    OPERATOR = 2  # + mark false positives, acknowledge alerts
    ADMIN = 3  # + anything administrative

    @property
    def label(self) -> str:
        return self.name.lower()


ALL_ROLES = frozenset(Role)


def expand(roles: Iterable[Role]) -> frozenset[Role]:
    """A set of granted roles plus every role they include (admin ⊇ operator ⊇ viewer)."""
    granted = list(roles)
    if not granted:
        return frozenset()
    top = max(granted)
    return frozenset(role for role in Role if role <= top)


def parse_role(name: str) -> Role | None:
    try:
        return Role[name.strip().upper()]
    except KeyError:
        return None


def claim_value(claims: Mapping[str, Any], claim: str) -> Any:
    """The claim named `claim`; a dotted name walks nested objects (`realm_access.roles`)
    unless the claim exists under its full name (Zitadel's is a URN with colons, no dots)."""
    if claim in claims:
        return claims[claim]
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def roles_from_claims(claims: Mapping[str, Any], claim: str) -> frozenset[Role]:
    """Roles named in the claim, which may be an object keyed by role (Zitadel:
    `{"operator": {"<org id>": "<org domain>"}}`), a list of names, or one name.
    Names other than viewer/operator/admin are ignored."""
    value = claim_value(claims, claim)
    if isinstance(value, Mapping):
        names: list[Any] = list(value.keys())
    elif isinstance(value, list | tuple):
        names = list(value)
    elif isinstance(value, str):
        names = value.replace(",", " ").split()
    else:
        names = []
    roles = [parse_role(name) for name in names if isinstance(name, str)]
    return expand(role for role in roles if role is not None)
