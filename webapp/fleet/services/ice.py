"""ICE servers for both peers: configured STUN/TURN, with coturn short-lived credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings


def ice_servers_for(identity: str, now: float | None = None) -> list[dict[str, Any]]:
    servers: list[dict[str, Any]] = [dict(s) for s in settings.FOREMAN_ICE_SERVERS]
    if settings.FOREMAN_TURN_URLS and settings.FOREMAN_TURN_SECRET:
        # coturn "use-auth-secret": username = "<expiry>:<identity>", credential = b64(HMAC-SHA1(secret, username)).
        expiry = int(now if now is not None else time.time()) + settings.FOREMAN_TURN_TTL_S
        username = f"{expiry}:{identity}"
        digest = hmac.new(settings.FOREMAN_TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()
        servers.append({"urls": list(settings.FOREMAN_TURN_URLS), "username": username, "credential": base64.b64encode(digest).decode()})
    return servers
