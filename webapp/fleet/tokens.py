"""Bearer tokens: robot tokens (frt_...) and personal API tokens (fut_...), stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

ROBOT_TOKEN_PREFIX = "frt_"
USER_TOKEN_PREFIX = "fut_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_from_headers(headers: list[tuple[bytes, bytes]] | dict[str, str]) -> str | None:
    """The token of an `Authorization: Bearer ...` header (ASGI header list or a META-like dict)."""
    if isinstance(headers, dict):
        value = headers.get("HTTP_AUTHORIZATION", "")
    else:
        value = ""
        for name, raw in headers:
            if name.lower() == b"authorization":
                value = raw.decode("latin-1")
                break
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
