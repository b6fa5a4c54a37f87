"""The agent's WebSocket link to the server (/ws/robot/, docs/protocol.md).

Connects with the robot token, sends `hello` (current mode, e-stop latch, lease), waits for
`welcome`, then hands every validated server message to the agent. Malformed messages are dropped
with a logged reason and counted, never fatal. Reconnects with bounded exponential backoff and
jitter. Messages that must not be lost (cycle events, acks, faults) wait in a bounded outbox while
the server is away; telemetry is simply skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from foreman_protocol import MAX_MESSAGE_BYTES, ProtocolError, parse_server_to_robot
from foreman_protocol.messages import ErrorMessage, Hello, RobotToServerMessage, ServerToRobotMessage, Welcome, dump_message

log = logging.getLogger(__name__)

CLOSE_AUTH_FAILED = 4401
CLOSE_BAD_PROTOCOL = 4400
CLOSE_REPLACED = 4409


class FatalLinkError(Exception):
    """The server refused us for a reason retrying cannot fix (bad token, protocol version)."""


class Link:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        hello: Callable[[], Hello],
        on_welcome: Callable[[Welcome], Awaitable[None]],
        on_message: Callable[[ServerToRobotMessage], Awaitable[None]],
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 8.0,
        welcome_timeout_s: float = 5.0,
        outbox_size: int = 2000,
    ) -> None:
        self.url = url
        self.token = token
        self.hello = hello
        self.on_welcome = on_welcome
        self.on_message = on_message
        self.on_disconnect = on_disconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.welcome_timeout_s = welcome_timeout_s
        self.ws: ClientConnection | None = None
        self.connected = asyncio.Event()  # set between welcome and disconnect
        self.outbox: deque[str] = deque(maxlen=outbox_size)
        self.malformed: Counter[str] = Counter()  # inbound messages dropped, by error code
        self.server_errors: list[dict[str, Any]] = []  # last `error` messages from the server
        self.connects = 0
        self.last_close_code: int | None = None

    @property
    def is_connected(self) -> bool:
        return self.connected.is_set()

    async def send(self, message: RobotToServerMessage, *, queue_if_offline: bool = False) -> bool:
        """Send now if connected; otherwise queue it (if asked) for after the next welcome."""
        text = dump_message(message)
        ws = self.ws
        if ws is not None and self.is_connected:
            try:
                await ws.send(text)
                return True
            except ConnectionClosed:
                pass
        if queue_if_offline:
            self.outbox.append(text)
        return False

    async def run(self) -> None:
        """Connect forever (until cancelled or a fatal refusal)."""
        attempt = 0
        while True:
            try:
                welcomed = await self._session()
            except FatalLinkError:
                raise
            except (TimeoutError, OSError, InvalidHandshake, InvalidURI, ConnectionClosed) as error:
                log.info("link to %s failed: %s", self.url, error or type(error).__name__)
                welcomed = False
            attempt = 0 if welcomed else attempt + 1
            delay = min(self.backoff_max_s, self.backoff_initial_s * (2 ** min(attempt, 10)))
            delay *= random.uniform(0.5, 1.0)  # jitter: a fleet restarting together spreads out
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        headers = {"Authorization": f"Bearer {self.token}"}
        welcomed = False
        async with connect(
            self.url, additional_headers=headers, proxy=None, open_timeout=5, close_timeout=2,
            ping_interval=5, ping_timeout=5, max_size=MAX_MESSAGE_BYTES * 2, compression=None,
        ) as ws:
            self.ws = ws
            try:
                await ws.send(dump_message(self.hello()))
                welcome = await self._await_welcome(ws)
                welcomed = True
                self.connects += 1
                self.connected.set()
                await self.on_welcome(welcome)
                await self._flush_outbox(ws)
                async for raw in ws:
                    message = self._parse(raw)
                    if message is not None:
                        await self._dispatch(message)
            except ConnectionClosed as closed:
                self._check_close(closed)
            finally:
                was_connected = self.is_connected
                self.connected.clear()
                self.ws = None
                if was_connected and self.on_disconnect is not None:
                    await self.on_disconnect()
        self._check_close_code(ws.close_code)
        return welcomed

    async def _await_welcome(self, ws: ClientConnection) -> Welcome:
        async with asyncio.timeout(self.welcome_timeout_s):
            while True:
                message = self._parse(await ws.recv())
                if message is None:
                    continue
                if isinstance(message, Welcome):
                    return message
                if isinstance(message, ErrorMessage):
                    log.warning("server error before welcome: %s %s", message.code, message.message)
                    self.server_errors.append(message.model_dump())
                # Anything else before welcome (e.g. a stray command) is not for this session yet.

    async def _flush_outbox(self, ws: ClientConnection) -> None:
        while self.outbox:
            await ws.send(self.outbox[0])
            self.outbox.popleft()

    def _parse(self, raw: str | bytes) -> ServerToRobotMessage | None:
        try:
            return parse_server_to_robot(raw)
        except ProtocolError as error:
            self.malformed[error.code] += 1
            log.warning("dropped a malformed server message (%s): %s", error.code, error.message)
            return None

    async def _dispatch(self, message: ServerToRobotMessage) -> None:
        if isinstance(message, ErrorMessage):
            log.warning("server error %s: %s (ref %s)", message.code, message.message, message.ref)
            self.server_errors = (self.server_errors + [message.model_dump()])[-20:]
            return
        try:
            await self.on_message(message)
        except Exception:
            # One bad message must never take the link (and with it the robot's supervision) down.
            self.malformed["handler_error"] += 1
            log.exception("error handling server message %s", message.type)

    def _check_close(self, closed: ConnectionClosed) -> None:
        code = closed.rcvd.code if closed.rcvd is not None else None
        self._check_close_code(code)

    def _check_close_code(self, code: int | None) -> None:
        self.last_close_code = code
        if code == CLOSE_AUTH_FAILED:
            raise FatalLinkError("the server refused the robot token (close 4401): check --token")
        if code == CLOSE_BAD_PROTOCOL:
            raise FatalLinkError("the server does not speak this agent's protocol version (close 4400)")
        if code == CLOSE_REPLACED:
            log.error("another agent connected with this robot's token (close 4409); retrying with backoff")
