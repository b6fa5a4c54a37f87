"""The Janus SFU's JSON API, as Foreman's server and agents speak it (docs/protocol.md, "Video
through the SFU"): a small asyncio client over Janus's WebSocket transport, and Janus's signed
tokens (`token_auth_secret`), which the server mints and Janus checks on every request.

Only the VideoRoom plugin is used: one room per robot, created by the server with an `allowed`
list (Janus refuses a join without a listed token); the robot publishes each camera it is asked
for as its own feed; each authorized page subscribes with a token of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

VIDEOROOM = "janus.plugin.videoroom"
KEEPALIVE_S = 25.0  # Janus ends a session after 60 s without a request (session_timeout)
REQUEST_TIMEOUT_S = 5.0


class JanusError(Exception):
    """Janus unreachable, or it refused a request: `code` is Janus's (403: token refused) or 0."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def sign_token(secret: str, ttl_s: float, plugins: tuple[str, ...] = (VIDEOROOM,), now: float | None = None) -> str:
    """A Janus signed token: `<expiry>,janus,<plugins>:<base64 HMAC-SHA1>` (Janus's token_auth_secret)."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    data = f"{expiry},janus,{','.join(plugins)}"
    signature = base64.b64encode(hmac.new(secret.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return f"{data}:{signature}"


def token_expiry(token: str) -> float:
    """When a signed token stops being accepted (Unix seconds); 0 for anything else."""
    try:
        return float(token.split(",", 1)[0])
    except ValueError:
        return 0.0


def plugin_data(reply: dict[str, Any]) -> dict[str, Any]:
    """The plugin's part of a Janus message ({} when there is none, or when it is not an object)."""
    plugindata = reply.get("plugindata")
    data = plugindata.get("data") if isinstance(plugindata, dict) else None
    return data if isinstance(data, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _id_of(reply: dict[str, Any], request: str) -> int:
    """The session or handle id in Janus's `success`; a malformed answer is a JanusError, like any refusal."""
    try:
        return int(reply["data"]["id"])
    except (KeyError, TypeError, ValueError):
        raise JanusError(f"the video server's answer to {request} has no id: {str(reply)[:200]}") from None


class JanusSession:
    """One Janus session over one WebSocket, with its keepalive. Events Janus pushes for a handle
    (asynchronous plugin answers, `webrtcup`, `hangup`…) are queued per handle."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.session_id: int | None = None
        self._socket: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def open(self) -> JanusSession:
        try:
            self._socket = await asyncio.wait_for(connect(self.url, subprotocols=["janus-protocol"], open_timeout=REQUEST_TIMEOUT_S,  # type: ignore[list-item]  # websockets types subprotocols as a NewType of str
                                                          max_size=1 << 20), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
            raise JanusError(f"video server unreachable at {self.url}: {error or type(error).__name__}") from None
        self._tasks.append(asyncio.create_task(self._read()))
        try:
            self.session_id = _id_of(await self.request({"janus": "create"}), "create")
        except JanusError:
            await self.close()  # no session: nothing to destroy, but the socket and its reader go
            raise
        self._tasks.append(asyncio.create_task(self._keepalive()))
        return self

    async def close(self) -> None:
        if self.session_id is not None and self._socket is not None and not self.closed.is_set():
            with contextlib.suppress(JanusError):
                await self.request({"janus": "destroy"})
        for task in self._tasks:
            task.cancel()
        if self._socket is not None:
            await self._socket.close()
        self.closed.set()

    async def request(self, message: dict[str, Any], *, timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """Send one request and return its answer (`success`, or the plugin's `event` for requests
        Janus answers asynchronously; `ack`s are skipped). Errors raise JanusError."""
        if self._socket is None or self.closed.is_set():
            raise JanusError("the video server connection is closed")
        transaction = f"t{next(self._ids)}"
        body = {**message, "transaction": transaction, "token": self.token}
        if self.session_id is not None:
            body["session_id"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        try:
            await self._socket.send(json.dumps(body))
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:  # first: TimeoutError is an OSError
            raise JanusError(f"the video server did not answer {message.get('janus')} in {timeout:.0f} s") from None
        except (ConnectionClosed, OSError) as error:
            raise JanusError(f"the video server closed the connection: {error}") from None
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            said = reply.get("error")
            refusal: dict[str, Any] = said if isinstance(said, dict) else {}
            raise JanusError(f"video server: {refusal.get('reason', 'error')}", _int(refusal.get("code", 0)))
        plugin = plugin_data(reply)
        if "error_code" in plugin:
            raise JanusError(f"video room: {plugin.get('error', 'error')}", _int(plugin["error_code"]))
        return reply

    async def attach(self, plugin: str = VIDEOROOM) -> int:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle = _id_of(reply, "attach")
        self._events[handle] = asyncio.Queue()
        return handle

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"janus": "message", "handle_id": handle, "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        return await self.request(message)

    async def event(self, handle: int, *, timeout: float = REQUEST_TIMEOUT_S, want: str = "event") -> dict[str, Any]:
        """The next message Janus pushes for `handle` of kind `want` (e.g. `webrtcup`); plugin errors raise JanusError."""
        queue = self._events[handle]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise JanusError(f"the video server sent no {want} in {timeout:.0f} s")
            try:
                event = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                continue
            plugin = plugin_data(event)
            if "error_code" in plugin:
                raise JanusError(f"video room: {plugin.get('error', 'error')}", _int(plugin["error_code"]))
            if event.get("janus") == want:
                return event

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict) or message.get("janus") == "ack":
                    continue
                # A request's answer carries its transaction: `success`, or for a plugin request
                # answered later (join, configure, start) the `event` after Janus's `ack`.
                future = self._pending.get(str(message.get("transaction")))
                if future is not None and not future.done():
                    future.set_result(message)
                    continue
                handle = message.get("sender")  # pushed: webrtcup, hangup, media, unsolicited events
                if isinstance(handle, int) and handle in self._events:
                    self._events[handle].put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionClosed(None, None))

    async def _keepalive(self) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(KEEPALIVE_S)
            with contextlib.suppress(JanusError):
                await self.request({"janus": "keepalive"})
