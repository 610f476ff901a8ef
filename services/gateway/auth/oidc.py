"""The OIDC issuer: discovery, its signing keys (JWKS) and JWT verification.

PyJWT does the JOSE work (signature, alg, exp/nbf/iat with leeway, iss, aud); this
module only finds the key: the JWKS is fetched from the issuer's discovery document,
cached for `oidc_jwks_cache_s`, and refetched early when a token names a `kid` it does
not hold (key rotation) — at most once per `oidc_jwks_min_refresh_s`, so tokens with
made-up kids cannot make the gateway hammer the issuer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from services.gateway.auth.principal import Principal
from services.gateway.auth.roles import roles_from_claims
from shared.settings import GatewaySettings

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0


class TokenRejected(Exception):
    """A JWT that must not be accepted; the message says why (safe to show the client)."""


class IssuerUnavailable(Exception):
    """The issuer's discovery document or keys could not be fetched."""


@dataclass(frozen=True)
class Discovery:
    issuer: str
    jwks_uri: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str | None


class Issuer:
    """One OIDC issuer: discovery and keys, fetched lazily, cached, refreshed on rotation."""

    def __init__(self, settings: GatewaySettings, http: httpx.AsyncClient | None = None) -> None:
        assert settings.oidc_issuer is not None
        self.settings = settings
        self.issuer = settings.oidc_issuer
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False)
        self._discovery: Discovery | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerUnavailable(f"cannot fetch {url}: {exc!r}") from exc
        if not isinstance(body, dict):
            raise IssuerUnavailable(f"{url} did not return a JSON object")
        return body

    async def discovery(self) -> Discovery:
        if self._discovery is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await self._get_json(url)
            if doc.get("issuer") != self.issuer:
                # OIDC Discovery §4.3: the document must name exactly the configured issuer.
                raise IssuerUnavailable(
                    f"discovery document names issuer {doc.get('issuer')!r}, not {self.issuer!r}"
                )
            try:
                self._discovery = Discovery(
                    issuer=doc["issuer"],
                    jwks_uri=doc["jwks_uri"],
                    authorization_endpoint=doc["authorization_endpoint"],
                    token_endpoint=doc["token_endpoint"],
                    end_session_endpoint=doc.get("end_session_endpoint"),
                )
            except KeyError as exc:
                raise IssuerUnavailable(f"discovery document lacks {exc}") from None
        return self._discovery

    async def _refresh_keys(self) -> None:
        jwks = await self._get_json((await self.discovery()).jwks_uri)
        keys: dict[str, jwt.PyJWK] = {}
        for data in jwks.get("keys", []):
            kid = data.get("kid") if isinstance(data, dict) else None
            if not isinstance(kid, str) or data.get("use", "sig") != "sig":
                continue
            try:
                keys[kid] = jwt.PyJWK(data)
            except jwt.PyJWTError as exc:  # a key type or curve we cannot use: skip it
                log.warning("skipping unusable JWKS key", extra={"kid": kid, "error": str(exc)})
        self._keys = keys
        self._keys_fetched_at = time.monotonic()
        log.info("fetched issuer keys", extra={"kids": sorted(keys)})

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The signing key `kid`, refetching the JWKS when stale or when `kid` is new."""
        age = time.monotonic() - self._keys_fetched_at
        if kid in self._keys and age < self.settings.oidc_jwks_cache_s:
            return self._keys[kid]
        async with self._lock:
            age = time.monotonic() - self._keys_fetched_at
            stale = age >= self.settings.oidc_jwks_cache_s
            may_refetch = age >= self.settings.oidc_jwks_min_refresh_s
            if stale or (kid not in self._keys and may_refetch):
                try:
                    await self._refresh_keys()
                except IssuerUnavailable:
                    if not self._keys:
                        raise
                    # Keep verifying with the keys we have while the issuer is away.
                    log.warning("issuer keys could not be refreshed; using cached keys")
            return self._keys.get(kid)

    async def verify(
        self, token: str, *, audience: str, nonce: str | None = None
    ) -> dict[str, Any]:
        """The claims of a valid JWT from this issuer for `audience`, or TokenRejected."""
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        alg = header.get("alg")
        if alg not in settings.oidc_algorithms:
            raise TokenRejected(f"token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("token names no signing key (kid)")
        key = await self.key(kid)
        if key is None:
            raise TokenRejected("token signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=settings.oidc_algorithms,
                audience=audience,
                issuer=self.issuer,
                leeway=settings.auth_clock_skew_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"invalid token: {exc}") from None
        if nonce is not None and claims.get("nonce") != nonce:
            raise TokenRejected("token nonce does not match this sign-in")
        return claims

    def principal(self, claims: Mapping[str, Any], via: str) -> Principal:
        name = next(
            (
                claims[key]
                for key in ("preferred_username", "name", "email", "sub")
                if isinstance(claims.get(key), str) and claims[key]
            ),
            str(claims["sub"]),
        )
        exp = claims.get("exp")
        return Principal(
            subject=str(claims["sub"]),
            name=name,
            roles=roles_from_claims(claims, self.settings.oidc_roles_claim),
            via=via,
            expires_at=datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None,
        )
