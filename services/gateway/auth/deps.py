"""FastAPI dependencies: one per role, each returning the acting `Principal`.

Every route declares exactly what it needs::

    @router.post("/executions/{id}/false-positive")
    async def mark(..., user: OperatorDep) -> ...:   # user.name goes into the audit trail

or, when it needs no data from the principal, ``dependencies=[Depends(require_viewer)]``
on the route or router. Routes open to anyone declare ``Depends(public)``.
`tests/gateway/test_route_roles.py` walks every route of the app and fails on any
that declares none of these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from services.gateway.auth.authenticate import Authenticator, AuthError, require
from services.gateway.auth.principal import Principal
from services.gateway.auth.roles import Role


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def _http_error(error: AuthError) -> HTTPException:
    return HTTPException(error.status, error.detail, headers=error.headers or None)


async def current_principal(request: Request) -> Principal:
    """The authenticated caller (any role)."""
    try:
        return await get_authenticator(request).authenticate(request)
    except AuthError as error:
        raise _http_error(error) from None


RoleCheck = Callable[..., Awaitable[Principal]]


def _requirement(role: Role) -> RoleCheck:
    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        try:
            return require(principal, role)
        except AuthError as error:
            raise _http_error(error) from None

    check.__name__ = f"require_{role.label}"
    check.__doc__ = f"The caller, who must hold the {role.label} role (or a higher one)."
    return check


require_viewer = _requirement(Role.VIEWER)
require_operator = _requirement(Role.OPERATOR)
require_admin = _requirement(Role.ADMIN)


async def public() -> None:
    """Declares a route open to anyone (health probes, the page, sign-in)."""


# The dependency callables that count as a route's role declaration.
ROLE_DECLARATIONS: dict[Callable[..., object], Role | None] = {
    require_viewer: Role.VIEWER,
    require_operator: Role.OPERATOR,
    require_admin: Role.ADMIN,
    public: None,
}

ViewerDep = Annotated[Principal, Depends(require_viewer)]
OperatorDep = Annotated[Principal, Depends(require_operator)]
AdminDep = Annotated[Principal, Depends(require_admin)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]

# Routes FastAPI cannot attach dependencies to, each declared open to anyone here: the
# dashboard's static files, and FastAPI's own API description pages.
PUBLIC_NON_API_PATHS = frozenset(
    {"/static", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
