"""A JWT issuer for tests: keys generated in the test, discovery + JWKS served over HTTP.

Real keys (cryptography), real signatures (PyJWT), a real HTTP server (uvicorn) — the
gateway fetches the keys exactly as it would from Zitadel. It only signs what a test
asks for; it is not a sign-in server (the browser test uses a real OIDC provider).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROLES_CLAIM = "urn:zitadel:iam:org:project:roles"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
    private: Any
    if alg.startswith("ES"):
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid or uuid.uuid4().hex[:12], alg, private)


@dataclass
class JwtIssuer:
    url: str = ""
    audience: str = "smokesignal-dashboard"
    published: list[SigningKey] = field(default_factory=list)
    jwks_fetches: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def roles(self, *names: str) -> dict[str, Any]:
        """Zitadel's shape: {"<role>": {"<org id>": "<org domain>"}}."""
        return {ROLES_CLAIM: {name: {"2448": "smokesignal.example"} for name in names}}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": "user-1",
            "preferred_username": "ana",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any],
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        key = key or self.published[0]
        return jwt.encode(
            claims, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})}
        )

    def token(self, *roles: str, **overrides: Any) -> str:
        return self.sign(self.claims(**self.roles(*roles), **overrides))

    # -- HTTP ----------------------------------------------------------------------------

    def _app(self) -> Starlette:
        async def discovery(_: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "jwks_uri": f"{self.url}/keys",
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "end_session_endpoint": f"{self.url}/end_session",
                }
            )

        async def keys(_: Request) -> JSONResponse:
            self.jwks_fetches += 1
            return JSONResponse({"keys": [key.public_jwk() for key in self.published]})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/keys", keys),
            ]
        )

    async def start(self) -> JwtIssuer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        if not self.published:
            self.published.append(new_key())
        config = uvicorn.Config(self._app(), log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
