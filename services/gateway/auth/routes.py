"""Sign-in and sign-out: /auth/session, /auth/token, /auth/login, /auth/callback, /auth/logout.

The dashboard holds no secret: whichever way a person signs in (the shared token typed
once, or the OIDC authorization code flow with PKCE), the result is the same HttpOnly
SameSite=Strict session cookie, which EventSource and <img> send by themselves.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from services.gateway.auth.authenticate import (
    Authenticator,
    AuthError,
    check_csrf,
    client_address,
)
from services.gateway.auth.deps import get_authenticator, public
from services.gateway.auth.oidc import IssuerUnavailable, TokenRejected
from services.gateway.auth.principal import Principal
from services.gateway.auth.sessions import (
    SESSION_COOKIE,
    PendingLogin,
    create_session,
    delete_session,
    save_pending_login,
    take_pending_login,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[Depends(public)])

AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
LOGIN_COOKIE = "smokesignal_login"
LOGIN_TTL_S = 600.0


class SessionUser(BaseModel):
    name: str
    subject: str
    roles: list[str]
    via: str


class SessionInfo(BaseModel):
    mode: str
    signed_in: bool
    user: SessionUser | None = None
    csrf_token: str | None = None
    expires_at: str | None = None
    # How this gateway lets people sign in.
    token_sign_in: bool
    oidc_sign_in: bool


class TokenSignIn(BaseModel):
    token: str = Field(min_length=1, max_length=4096)


def _info(authenticator: Authenticator, principal: Principal | None) -> SessionInfo:
    return SessionInfo(
        mode=authenticator.mode,
        signed_in=principal is not None,
        user=None
        if principal is None
        else SessionUser(
            name=principal.name,
            subject=principal.subject,
            roles=principal.role_names,
            via=principal.via,
        ),
        csrf_token=principal.csrf_token if principal else None,
        expires_at=principal.expires_at.isoformat() if principal and principal.expires_at else None,
        token_sign_in=authenticator.settings.gateway_token is not None,
        oidc_sign_in=authenticator.issuer is not None,
    )


def _error(error: AuthError) -> HTTPException:
    return HTTPException(error.status, error.detail, headers=error.headers or None)


def _pool(request: Request) -> Any:
    pool = request.app.state.resources.pool
    if pool is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "database not connected")
    return pool


def _same_origin(request: Request) -> None:
    # Sign-in and sign-out forms may only be posted by this gateway's own pages.
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")


def _set_session_cookie(request: Request, response: Response, value: str, ttl_s: float) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(ttl_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("/session")
async def session_info(request: Request, authenticator: AuthenticatorDep) -> SessionInfo:
    """Who the browser is signed in as (and its CSRF token), or how to sign in."""
    try:
        principal: Principal | None = await authenticator.authenticate(request)
    except AuthError as error:
        if error.status != status.HTTP_401_UNAUTHORIZED:
            raise _error(error) from None
        principal = None
    return _info(authenticator, principal)


@router.post("/token")
async def token_sign_in(
    body: TokenSignIn, request: Request, authenticator: AuthenticatorDep
) -> JSONResponse:
    """Exchange the shared GATEWAY_TOKEN, once, for a session cookie."""
    _same_origin(request)
    settings = authenticator.settings
    if settings.gateway_token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this gateway has no shared token")
    address = client_address(request)
    try:
        authenticator.failures.check(address)
    except AuthError as error:
        raise _error(error) from None
    principal = authenticator.shared_token(body.token)
    if principal is None:
        authenticator.failures.failed(address)
        log.warning("rejected shared token sign-in", extra={"client": address})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the gateway refused the token")
    new = await create_session(
        _pool(request),
        subject=principal.subject,
        name=principal.name,
        roles=principal.roles,
        via="token",
        ttl_s=settings.session_ttl_s,
    )
    response = JSONResponse(_info(authenticator, new.principal).model_dump())
    _set_session_cookie(request, response, new.cookie_value, settings.session_ttl_s)
    return response


def _safe_return_to(value: str | None) -> str:
    # Only paths on this gateway: never an open redirect to another site.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _s256(verifier: str) -> str:
    # RFC 7636 §4.2: BASE64URL(SHA256(code_verifier)), without padding.
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _issuer_or_404(authenticator: Authenticator) -> Any:
    if authenticator.issuer is None or authenticator.settings.oidc_client_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "OIDC sign-in is not configured")
    return authenticator.issuer


@router.get("/login")
async def oidc_login(
    request: Request,
    authenticator: AuthenticatorDep,
    return_to: str | None = None,
    popup: bool = False,
) -> RedirectResponse:
    """Start the authorization code flow with PKCE (S256) at the configured issuer."""
    issuer = _issuer_or_404(authenticator)
    settings = authenticator.settings
    try:
        discovery = await issuer.discovery()
    except IssuerUnavailable as exc:
        log.error("OIDC sign-in: issuer unavailable", extra={"error": str(exc)})
        raise HTTPException(503, "the identity provider cannot be reached") from None
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    nonce = secrets.token_urlsafe(32)
    await save_pending_login(
        _pool(request),
        state,
        PendingLogin(verifier, nonce, _safe_return_to(return_to), popup),
        LOGIN_TTL_S,
    )
    params = {
        "response_type": "code",
        "client_id": settings.oidc_client_id,
        "redirect_uri": str(request.url_for("oidc_callback")),
        "scope": settings.oidc_scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": _s256(verifier),
        "code_challenge_method": "S256",
    }
    response = RedirectResponse(
        f"{discovery.authorization_endpoint}?{urlencode(params)}", status.HTTP_303_SEE_OTHER
    )
    # Binds the callback to this browser (a login started elsewhere cannot be completed
    # here). Lax, not Strict: the callback is a top-level navigation from the issuer.
    response.set_cookie(
        LOGIN_COOKIE,
        state,
        max_age=int(LOGIN_TTL_S),
        path="/auth/callback",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


async def _exchange_code(
    authenticator: Authenticator, request: Request, code: str, verifier: str
) -> dict[str, Any]:
    issuer = _issuer_or_404(authenticator)
    settings = authenticator.settings
    discovery = await issuer.discovery()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": str(request.url_for("oidc_callback")),
        "code_verifier": verifier,
        "client_id": settings.oidc_client_id,
    }
    # A confidential client authenticates with client_secret_basic; a public one with
    # PKCE alone.
    secret = settings.oidc_client_secret
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            if secret is None:
                answer = await http.post(discovery.token_endpoint, data=form)
            else:
                basic = httpx.BasicAuth(settings.oidc_client_id or "", secret)
                answer = await http.post(discovery.token_endpoint, data=form, auth=basic)
    except httpx.HTTPError as exc:
        raise IssuerUnavailable(repr(exc)) from exc
    if answer.status_code != 200:
        raise TokenRejected(f"the identity provider refused the sign-in ({answer.status_code})")
    body: dict[str, Any] = answer.json()
    return body


def _page(title: str, message: str, script: str | None = None) -> HTMLResponse:
    # No inline script (the CSP forbids it): behaviour comes from a static file.
    tag = f'<script type="module" src="/static/{script}"></script>' if script else ""
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title>{tag}</head><body><p>{message}</p>"
        "<p><a href='/'>Back to the dashboard</a></p></body></html>"
    )


@router.get("/callback", name="oidc_callback")
async def oidc_callback(
    request: Request,
    authenticator: AuthenticatorDep,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=512)] = None,
    iss: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """The issuer sends the browser back here with a code: redeem it, start the session."""
    settings = authenticator.settings
    address = client_address(request)
    try:
        authenticator.failures.check(address)
    except AuthError as exc:
        raise _error(exc) from None
    pool = _pool(request)
    pending = await take_pending_login(pool, state or "")
    bound = request.cookies.get(LOGIN_COOKIE, "")
    # RFC 9207: an issuer that names itself must be ours (mix-up defence).
    wrong_issuer = iss is not None and iss != settings.oidc_issuer
    if error is not None or pending is None or code is None or bound != state or wrong_issuer:
        authenticator.failures.failed(address)
        reason = (
            f"the identity provider answered: {error}"
            if error
            else "this sign-in link is expired, already used or from another browser"
        )
        log.warning("OIDC sign-in refused", extra={"client": address, "reason": reason})
        return _page("Sign-in failed", f"Sign-in failed: {reason}. Try again.")
    try:
        tokens = await _exchange_code(authenticator, request, code, pending.code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise TokenRejected("the identity provider sent no ID token")
        issuer = _issuer_or_404(authenticator)
        claims = await issuer.verify(
            id_token, audience=settings.oidc_client_id or "", nonce=pending.nonce
        )
    except TokenRejected as exc:
        authenticator.failures.failed(address)
        log.warning("OIDC sign-in refused", extra={"client": address, "reason": str(exc)})
        return _page("Sign-in failed", f"Sign-in failed: {exc}. Try again.")
    except IssuerUnavailable as exc:
        log.error("OIDC sign-in: issuer unavailable", extra={"error": str(exc)})
        raise HTTPException(503, "the identity provider cannot be reached") from None
    principal = issuer.principal(claims, via="oidc")
    new = await create_session(
        pool,
        subject=principal.subject,
        name=principal.name,
        roles=principal.roles,
        via="oidc",
        ttl_s=settings.session_ttl_s,
    )
    log.info("signed in", extra={"user": principal.name, "roles": principal.role_names})
    response: Response
    if pending.popup:
        response = _page("Signed in", "Signed in. You can close this window.", "signed-in.js")
    else:
        response = RedirectResponse(pending.return_to, status.HTTP_303_SEE_OTHER)
    _set_session_cookie(request, response, new.cookie_value, settings.session_ttl_s)
    response.delete_cookie(LOGIN_COOKIE, path="/auth/callback")
    return response


@router.post("/logout")
async def sign_out(request: Request, authenticator: AuthenticatorDep) -> JSONResponse:
    """End the session here (every replica at once) and, for OIDC, say where to end the
    issuer's session too."""
    _same_origin(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    end_session_url = None
    if cookie:
        principal = await authenticator.session(cookie)
        if principal is not None:
            try:
                check_csrf(request, principal)
            except AuthError as error:
                raise _error(error) from None
        await delete_session(_pool(request), cookie)
    if authenticator.issuer is not None:
        try:
            end_session_url = (await authenticator.issuer.discovery()).end_session_endpoint
        except IssuerUnavailable:
            end_session_url = None
    response = JSONResponse({"signed_out": True, "end_session_url": end_session_url})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
