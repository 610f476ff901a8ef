"""Authentication and roles for the gateway (docs/AUTH.md).

Routes import the role dependencies from here: `ViewerDep`, `OperatorDep`, `AdminDep`
(each an `Annotated[Principal, Depends(...)]`), or `require_viewer` & co. for
`dependencies=[...]`, and `public` for routes open to anyone.
"""

from services.gateway.auth.authenticate import Authenticator, AuthError, require
from services.gateway.auth.deps import (
    PUBLIC_NON_API_PATHS,
    ROLE_DECLARATIONS,
    AdminDep,
    OperatorDep,
    PrincipalDep,
    ViewerDep,
    current_principal,
    public,
    require_admin,
    require_operator,
    require_viewer,
)
from services.gateway.auth.principal import ANONYMOUS, Principal
from services.gateway.auth.roles import Role

__all__ = [
    "ANONYMOUS",
    "PUBLIC_NON_API_PATHS",
    "ROLE_DECLARATIONS",
    "AdminDep",
    "AuthError",
    "Authenticator",
    "OperatorDep",
    "Principal",
    "PrincipalDep",
    "Role",
    "ViewerDep",
    "current_principal",
    "public",
    "require",
    "require_admin",
    "require_operator",
    "require_viewer",
]
