"""foreman_protocol/janus.py against a video server that misbehaves (a fake Janus on loopback):
every bad answer is a JanusError with a clear message, never a crash or a hang; and its signed
tokens are the ones Janus's token_auth_secret checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from foreman_protocol.janus import JanusError, JanusSession, plugin_data, sign_token, token_expiry
from tests.servers import free_port

Answer = Callable[[dict[str, Any]], list[Any]]


@pytest.fixture
async def fake_janus() -> AsyncIterator[Callable[[Answer], str]]:
    servers: list[Any] = []

    async def start(answer: Answer) -> str:
        async def handler(connection: ServerConnection) -> None:
            async for raw in connection:
                for reply in answer(json.loads(raw)):
                    await connection.send(reply if isinstance(reply, str) else json.dumps(reply))

        port = free_port()
        servers.append(await serve(handler, "127.0.0.1", port, subprotocols=["janus-protocol"]))  # type: ignore[list-item]  # websockets' Subprotocol NewType
        return f"ws://127.0.0.1:{port}"

    yield start  # type: ignore[misc]  # the fixture hands out an async starter
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_answers_without_ids_garbage_and_silence_are_janus_errors(fake_janus):
    no_id = await fake_janus(lambda m: [{"janus": "success", "transaction": m["transaction"], "data": {}}])
    with pytest.raises(JanusError, match="has no id"):
        await JanusSession(no_id, "t").open()
    garbage = await fake_janus(lambda m: ["not json", [1, 2], {"janus": "success", "transaction": m["transaction"], "data": "x"}])
    with pytest.raises(JanusError, match="has no id"):
        await JanusSession(garbage, "t").open()
    silent = await fake_janus(lambda m: [{"janus": "ack", "transaction": m["transaction"]}])
    session = JanusSession(silent, "t")
    with pytest.raises(JanusError, match="did not answer create"):
        await session.open()
    await session.close()
    refused = await fake_janus(lambda m: [{"janus": "error", "transaction": m["transaction"], "error": "not an object"}])
    with pytest.raises(JanusError) as error:
        await JanusSession(refused, "t").open()
    assert error.value.code == 0
    with pytest.raises(JanusError, match="unreachable"):
        await JanusSession(f"ws://127.0.0.1:{free_port()}", "t").open()


async def test_plugin_refusals_carry_their_code(fake_janus):
    def answer(message: dict[str, Any]) -> list[Any]:
        if message["janus"] in ("create", "attach"):
            return [{"janus": "success", "transaction": message["transaction"], "data": {"id": 7}}]
        return [{"janus": "ack", "transaction": message["transaction"]},
                {"janus": "event", "transaction": message["transaction"], "sender": 7,
                 "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"error_code": 433, "error": "Unauthorized"}}}]

    session = await JanusSession(await fake_janus(answer), "t").open()
    try:
        handle = await session.attach()
        with pytest.raises(JanusError) as refused:
            await session.message(handle, {"request": "join"})
        assert refused.value.code == 433 and "Unauthorized" in str(refused.value)
    finally:
        await session.close()
    assert plugin_data({"plugindata": "nonsense"}) == {} and plugin_data({"plugindata": {"data": {"a": 1}}}) == {"a": 1}


def test_signed_tokens_are_janus_hmac_sha1_tokens():
    token = sign_token("s3cret", 60, now=1_000_000)
    data, signature = token.split(":")
    assert data == "1000060,janus,janus.plugin.videoroom" and token_expiry(token) == 1_000_060
    assert base64.b64decode(signature) == hmac.new(b"s3cret", data.encode(), hashlib.sha1).digest()
