"""Every route of the gateway declares the role it needs (or that it is public)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from services.gateway.app import create_app
from services.gateway.auth import PUBLIC_NON_API_PATHS, ROLE_DECLARATIONS, Role
from shared.settings import GatewaySettings


def _calls(dependant: Dependant) -> Iterator[Callable[..., object]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def declared_roles(route: RouteContext) -> set[Role | None]:
    """The roles a route declares (None = public), found anywhere in its dependencies
    (the route's, its router's, or its endpoint's parameters')."""
    dependant: Dependant = route.dependant
    return {ROLE_DECLARATIONS[call] for call in _calls(dependant) if call in ROLE_DECLARATIONS}


def all_routes(app: FastAPI) -> list[RouteContext]:
    """Every route as served, with included routers flattened."""
    return list(iter_route_contexts(app.routes))


def asgi_endpoint_role(route: RouteContext) -> Role | None:
    """The role a plain ASGI endpoint enforces itself (its `role`; the event stream)."""
    role = getattr(getattr(route.original_route, "endpoint", None), "role", None)
    return role if isinstance(role, Role) else None


def undeclared_routes(app: FastAPI) -> list[str]:
    missing = []
    for route in all_routes(app):
        if isinstance(route.original_route, APIRoute):
            if not declared_roles(route):
                missing.append(f"{sorted(route.methods or ())} {route.path}")
        elif asgi_endpoint_role(route) is not None:
            continue
        elif route.path not in PUBLIC_NON_API_PATHS:
            missing.append(f"{type(route.original_route).__name__} {route.path}")
    return missing


def test_every_route_declares_a_role() -> None:
    app = create_app(GatewaySettings())
    missing = undeclared_routes(app)
    assert not missing, (
        f"routes without a role: {missing}. Give each a ViewerDep / OperatorDep / AdminDep "
        "parameter (services/gateway/auth), or Depends(public) if anyone may use it"
    )


def test_the_walk_finds_a_route_without_a_role() -> None:
    # The check above must be able to fail: add one undeclared and one declared route.
    app = create_app(GatewaySettings())

    @app.post("/api/undeclared")
    async def undeclared() -> None: ...

    @app.post("/api/declared", dependencies=[Depends(ROLE_DECLARATIONS_BY_ROLE[Role.OPERATOR])])
    async def declared() -> None: ...

    assert undeclared_routes(app) == ["['POST'] /api/undeclared"]
    app.mount("/elsewhere", FastAPI())
    assert "Mount /elsewhere" in undeclared_routes(app)


def test_api_routes_need_at_least_viewer_and_probes_are_public() -> None:
    app = create_app(GatewaySettings())
    paths = set()
    for route in all_routes(app):
        if not isinstance(route.original_route, APIRoute):
            if asgi_endpoint_role(route) is not None:
                paths.add(route.path)
            continue
        roles = declared_roles(route)
        paths.add(route.path)
        if route.path and route.path.startswith("/api/"):
            assert None not in roles and roles, (route.path, roles)
        elif route.path in {"/healthz", "/readyz", "/metrics", "/"}:
            assert roles == {None}, (route.path, roles)
    assert {"/api/events", "/api/executions", "/healthz"} <= paths, paths


ROLE_DECLARATIONS_BY_ROLE = {role: call for call, role in ROLE_DECLARATIONS.items()}
