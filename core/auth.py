"""Who may call the protected routes: the shared secret, or an HS256 JWT the engine signed.

Contracts: secrets are compared in constant time (``hmac.compare_digest``); neither a secret
nor a token is ever logged or echoed in an answer; the 401 ``details.reason`` tells apart
``missing_credentials``, ``invalid_secret``, ``token_expired`` and ``invalid_token``.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import Unauthorized

log = logging.getLogger("tttranscribe.auth")

ISSUER, AUDIENCE, LEEWAY_SECONDS = "pluct-business-engine", "tttranscribe", 60


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: ``kind`` is ``secret`` or ``jwt``; ``subject`` the JWT's sub."""

    kind: str
    subject: str | None = None


def _unauthorized(reason: str, missing: bool = False) -> Unauthorized:
    message = "Missing Authorization header" if missing else "Invalid authentication token"
    return Unauthorized(message, details={"reason": reason})


class Authenticator:
    def __init__(self, secret: str, jwt_secret: str | None = None, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("an empty shared secret would let everyone in")
        self._secret = secret.encode()
        self._jwt_secret = jwt_secret
        self._clock = clock

    def check(self, headers: Mapping[str, str]) -> Caller:
        """The caller behind these headers, or ``Unauthorized``."""
        engine = headers.get("X-Engine-Auth")
        bearer = headers.get("Authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        if engine is None and not token:
            log.info("[auth] rejected: no credentials")
            raise _unauthorized("missing_credentials", missing=True)
        for candidate in (engine, token):
            if candidate and hmac.compare_digest(candidate.encode(), self._secret):
                return Caller("secret")
        if token and self._jwt_secret and token.count(".") == 2:
            return self._check_jwt(token)
        log.info("[auth] rejected: credentials did not match")
        raise _unauthorized("invalid_secret")

    def _check_jwt(self, token: str) -> Caller:
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            log.info("[auth] rejected: expired token")
            raise _unauthorized("token_expired") from None
        except jwt.PyJWTError as exc:
            log.info("[auth] rejected: invalid token (%s)", type(exc).__name__)
            raise _unauthorized("invalid_token") from None
        return Caller("jwt", str(claims["sub"]))


def load_or_create_secret(data_dir: Path, announce: Callable[[str], None]) -> str:
    """The generated shared secret kept in ``data_dir``; created (0600) on first use.

    ``announce`` receives the banner once, when the secret is created, like Jupyter's token.
    Creation uses O_EXCL so that two processes starting together agree on one secret.
    """
    path = data_dir / "engine_shared_secret"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the creator may still be writing it
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty") from None
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    announce(
        "\n    ENGINE_SHARED_SECRET is not set, so TTTranscribe generated one.\n"
        f"    Send it as  X-Engine-Auth: {value}\n"
        f"    It is kept in {path}; set ENGINE_SHARED_SECRET to choose your own.\n"
    )
    return value
