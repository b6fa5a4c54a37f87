"""XR0 (pickle over TCP) and openpi (websocket + msgpack) adapters against stand-in servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import pickle
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from websockets.asyncio.server import serve

from foreman_learning.policies.remote import OpenPiPolicy, RemotePolicyError, Xr0Policy, packb, unpackb, xr0_from_spec

OBSERVATION = {
    "state": np.arange(14, dtype=np.float32),
    "images": {"head": np.full((48, 64, 3), 7, np.uint8), "wrist_left": np.zeros((48, 64, 3), np.uint8)},
}


# ---------------------------------------------------------------- XR0 stand-in


class Xr0StandIn(socketserver.ThreadingTCPServer):
    """Behaves like deploy/server.py: length-prefixed pickles, one reply per request."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, reply: Callable[[dict[str, Any]], bytes | None]) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), Xr0Handler)


class Xr0Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, Xr0StandIn)
        self.request.settimeout(5)
        while True:
            header = self._read(4)
            if header is None:
                return
            (length,) = struct.unpack(">I", header)
            body = self._read(length)
            if body is None:
                return
            request = pickle.loads(body)
            server.requests.append(request)
            payload = server.reply(request)
            if payload is None:
                return  # like the reference server on an exception: close, no reply
            self.request.sendall(payload)

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data


def framed(obj: Any) -> bytes:
    body = pickle.dumps(obj)
    return struct.pack(">I", len(body)) + body


@pytest.fixture
def xr0_server() -> Iterator[Callable[[Callable[[dict[str, Any]], bytes | None]], Xr0StandIn]]:
    servers: list[Xr0StandIn] = []

    def start(reply: Callable[[dict[str, Any]], bytes | None]) -> Xr0StandIn:
        server = Xr0StandIn(reply)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_xr0_request_format_and_chunk_reply(xr0_server, caplog):
    chunk = torch.arange(30 * 15, dtype=torch.float32).reshape(1, 30, 15)
    server = xr0_server(lambda request: framed(chunk))
    port = server.server_address[1]
    policy = xr0_from_spec(f"xr0://127.0.0.1:{port}?task_id=libero_all", language="install nuts", action_dim=14)
    with caplog.at_level("WARNING"):
        first = policy.infer(OBSERVATION)
        second = policy.infer(OBSERVATION)  # the same persistent connection
    assert "PICKLE" in caplog.text and "trusted link" in caplog.text
    assert first.actions.shape == (30, 14)
    np.testing.assert_array_equal(first.actions, chunk[0, :, :-1].numpy())
    assert second.actions.shape == (30, 14)
    request = server.requests[0]
    assert request["task_id"] == "libero_all" and request["language"] == "install nuts"
    assert request["state"].shape == (32,) and request["state"][13] == 13 and request["state"][14:].sum() == 0
    assert request["base"].shape == (48, 64, 3) and request["base"][0, 0, 0] == 7
    assert "wrist_left" in request and isinstance(request["seed"], int)
    assert len(server.requests) == 2
    policy.close()


def test_xr0_prefix_is_sent_when_enabled(xr0_server):
    server = xr0_server(lambda request: framed(torch.zeros(1, 30, 33)))
    policy = xr0_from_spec(f"xr0://127.0.0.1:{server.server_address[1]}?prefix=1")
    assert policy.supports_prefix
    policy.infer(OBSERVATION, prefix=np.ones((5, 32)))
    request = server.requests[0]
    assert request["prefix_length"] == 5 and request["action"].shape == (1, 30, 32)
    assert request["action"][0, :5].sum() == 5 * 32 and request["action"][0, 5:].sum() == 0
    policy.close()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (lambda request: struct.pack(">I", 2**31), "exceeds"),  # oversized length prefix
        (lambda request: None, "EOF"),  # server died on our request
        (lambda request: struct.pack(">I", 5) + b"\x80\x04junk"[:5], "not a valid pickle"),
        (lambda request: framed(torch.zeros(30, 8)), "expected (1, T, D+1)"),
        (lambda request: framed("a string"), "not a numeric array"),
        (lambda request: framed(torch.full((1, 4, 3), float("nan"))), "NaN"),
    ],
)
def test_xr0_malformed_replies_are_clear_errors(xr0_server, reply, message):
    server = xr0_server(reply)
    policy = Xr0Policy("127.0.0.1", server.server_address[1], timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(RemotePolicyError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        policy.infer(OBSERVATION)
    assert time.monotonic() - started < 2.0
    policy.close()


def test_xr0_silent_server_times_out(xr0_server):
    server = xr0_server(lambda request: (time.sleep(1.0), b"")[1])
    policy = Xr0Policy("127.0.0.1", server.server_address[1], timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(RemotePolicyError, match="did not answer within"):
        policy.infer(OBSERVATION)
    assert time.monotonic() - started < 1.0


def test_xr0_unreachable_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RemotePolicyError, match="cannot reach"):
        Xr0Policy("127.0.0.1", port, timeout_s=1.0).infer(OBSERVATION)


# ---------------------------------------------------------------- openpi stand-in


async def openpi_server(respond: Callable[[dict[str, Any]], Any], received: list[dict[str, Any]]):
    async def handler(ws: Any) -> None:
        await ws.send(packb({"action_horizon": 10, "name": "stand-in"}))
        async for raw in ws:
            request = unpackb(raw)
            received.append(request)
            reply = respond(request)
            if reply is None:
                await asyncio.sleep(0.8)
                continue
            await ws.send(reply)

    return await serve(handler, "127.0.0.1", 0, compression=None)


async def test_openpi_roundtrip_metadata_and_actions():
    received: list[dict[str, Any]] = []
    actions = np.linspace(0, 1, 10 * 14, dtype=np.float32).reshape(10, 14)
    server = await openpi_server(lambda request: packb({"actions": actions}), received)
    port = server.sockets[0].getsockname()[1]
    policy = OpenPiPolicy(f"ws://127.0.0.1:{port}", language="install nuts", timeout_s=2.0)
    try:
        output = await asyncio.to_thread(policy.infer, OBSERVATION)
        assert policy.metadata == {"action_horizon": 10, "name": "stand-in"}
        np.testing.assert_allclose(output.actions, actions)
        request = received[0]
        assert request["prompt"] == "install nuts"
        np.testing.assert_array_equal(request["observation/state"], OBSERVATION["state"])
        assert request["observation/head"].dtype == np.uint8 and request["observation/head"].shape == (48, 64, 3)
    finally:
        await asyncio.to_thread(policy.close)  # closing waits for the server, which runs on this loop
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("respond", "message"),
    [
        (lambda request: "Traceback: model exploded", "openpi server error"),
        (lambda request: b"\xc1\xc1\xc1", "not valid msgpack"),
        (lambda request: packb({"not_actions": 1}), "no 'actions'"),
        (lambda request: None, "did not answer within"),
    ],
)
async def test_openpi_malformed_replies_are_clear_errors(respond, message):
    server = await openpi_server(respond, [])
    port = server.sockets[0].getsockname()[1]
    policy = OpenPiPolicy(f"ws://127.0.0.1:{port}", timeout_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(RemotePolicyError, match=message):
            await asyncio.to_thread(policy.infer, OBSERVATION)
        assert time.monotonic() - started < 2.0
    finally:
        await asyncio.to_thread(policy.close)  # closing waits for the server, which runs on this loop
        server.close()
        await server.wait_closed()


async def test_openpi_oversized_reply_is_refused():
    big = np.zeros((1024, 1024), dtype=np.float32)  # 4 MiB > the 1 MiB limit below
    server = await openpi_server(lambda request: packb({"actions": big}), [])
    port = server.sockets[0].getsockname()[1]
    policy = OpenPiPolicy(f"ws://127.0.0.1:{port}", timeout_s=2.0, max_reply_bytes=1024 * 1024)
    try:
        with pytest.raises(RemotePolicyError, match="closed the connection"):
            await asyncio.to_thread(policy.infer, OBSERVATION)
    finally:
        await asyncio.to_thread(policy.close)  # closing waits for the server, which runs on this loop
        server.close()
        await server.wait_closed()
