"""Policies served by other processes: a Xiaomi-Robotics-0 deploy server (xr0://HOST:PORT) and an
openpi-style websocket policy server (ws://HOST:PORT). The wire formats are described in docs/agent.md
("Remote policies").

Both run inside the agent's inference thread (blocking sockets with a timeout on every read).
Neither reports a confidence, so the uncertainty trigger is off with them (faults and takt still apply).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
import socket
import struct
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
import numpy as np

from foreman_learning.policies.base import PolicyOutput

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 64 * 1024 * 1024
XR0_STATE_DIM = 32


class RemotePolicyError(Exception):
    """The policy server misbehaved (EOF, timeout, oversized or malformed reply)."""


def _observation_parts(observation: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(state vector, {camera: HxWx3 uint8}) from the agent's observation (a dict or an object)."""
    get = observation.get if isinstance(observation, dict) else (lambda key, default=None: getattr(observation, key, default))
    state = np.asarray(get("state"), dtype=np.float32).reshape(-1)
    images = get("images", None) or {}
    return state, {str(k): np.asarray(v) for k, v in dict(images).items()}


# ---------------------------------------------------------------- XR0 deploy server (pickle over TCP)


class Xr0Policy:
    """Client of the XR0 deploy server: 4-byte big-endian length + pickle, both directions."""

    supports_prefix = False  # xr0://…?prefix=1 turns it on
    needs_ground_truth = False

    def __init__(
        self,
        host: str,
        port: int,
        *,
        task_id: str = "libero_all",
        language: str = "install the self-tapping nuts",
        cameras: dict[str, str] | None = None,
        timeout_s: float = 10.0,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        prefix: bool = False,
        action_dim: int | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.task_id = task_id
        self.language = language
        # Agent camera → request key. XR0 checkpoints know `base` and `wrist_left`.
        self.cameras = cameras or {"head": "base", "wrist_left": "wrist_left"}
        self.timeout_s = timeout_s
        self.max_reply_bytes = max_reply_bytes
        self.supports_prefix = prefix
        self.action_dim = action_dim
        self.version = f"xr0:{task_id}@{host}:{port}"
        self.sock: socket.socket | None = None

    def connect(self) -> None:
        log.warning(
            "XR0 policy server %s:%d speaks PICKLE: a malicious or compromised server can run code in this "
            "agent. Use it only on a trusted link (same machine or a private, authenticated network).",
            self.host, self.port,
        )
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as error:
            raise RemotePolicyError(f"cannot reach the XR0 server at {self.host}:{self.port}: {error}") from None
        self.sock.settimeout(self.timeout_s)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, payload: dict[str, Any]) -> Any:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        try:
            body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            self.sock.sendall(struct.pack(">I", len(body)) + body)
            (length,) = struct.unpack(">I", self._read_exactly(4))
            if length > self.max_reply_bytes:
                raise RemotePolicyError(f"XR0 reply of {length} bytes exceeds the {self.max_reply_bytes}-byte limit")
            data = self._read_exactly(length)
        except TimeoutError:
            self.close()
            raise RemotePolicyError(f"XR0 server did not answer within {self.timeout_s:.1f} s") from None
        except RemotePolicyError:
            self.close()
            raise
        except OSError as error:
            self.close()
            raise RemotePolicyError(f"XR0 link error: {error}") from None
        try:
            # Unpickling runs code: a trusted link only, see the warning at connect.
            return pickle.loads(data)
        except Exception as error:  # noqa: BLE001 - a bad pickle raises anything; each is a clear policy error
            raise RemotePolicyError(f"XR0 reply is not a valid pickle: {type(error).__name__}: {error}") from None

    def _read_exactly(self, size: int) -> bytes:
        assert self.sock is not None
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(min(size - len(chunks), 1 << 20))
            if not chunk:
                raise RemotePolicyError("XR0 server closed the connection (EOF): it failed on our request or went away")
            chunks += chunk
        return bytes(chunks)

    def infer(self, observation: Any, prefix: np.ndarray | None = None) -> PolicyOutput:
        state, images = _observation_parts(observation)
        padded = np.zeros(XR0_STATE_DIM, dtype=np.float32)
        padded[: min(len(state), XR0_STATE_DIM)] = state[:XR0_STATE_DIM]
        request: dict[str, Any] = {"task_id": self.task_id, "state": padded, "language": self.language}
        for camera, key in self.cameras.items():
            if camera in images:
                request[key] = np.ascontiguousarray(images[camera], dtype=np.uint8)
        digest = hashlib.sha256(padded.tobytes() + self.language.encode()).digest()
        request["seed"] = int.from_bytes(digest[:4], "big")  # the reference client hashes its inputs too
        if self.supports_prefix and prefix is not None and len(prefix):
            action = np.zeros((1, 30, XR0_STATE_DIM), dtype=np.float32)
            n = min(len(prefix), 30)
            action[0, :n, : min(prefix.shape[1], XR0_STATE_DIM)] = prefix[:n, :XR0_STATE_DIM]
            request["action"], request["prefix_length"] = action, n
        reply = self.request(request)
        actions = _to_numpy(reply)
        if actions.ndim != 3 or actions.shape[0] != 1 or actions.shape[1] < 1 or actions.shape[2] < 2:
            raise RemotePolicyError(f"XR0 reply has shape {actions.shape}; expected (1, T, D+1)")
        actions = actions[0, :, :-1]  # the last column is not an action
        if self.action_dim is not None:
            actions = actions[:, : self.action_dim]
        return PolicyOutput(actions.astype(np.float64), None)


def _to_numpy(reply: Any) -> np.ndarray:
    if hasattr(reply, "detach") and hasattr(reply, "cpu"):  # a torch.Tensor
        reply = reply.detach().cpu().float().numpy()
    try:
        array = np.asarray(reply, dtype=np.float64)
    except (TypeError, ValueError):
        raise RemotePolicyError(f"policy reply is a {type(reply).__name__}, not a numeric array") from None
    if not np.all(np.isfinite(array)):
        raise RemotePolicyError("policy reply contains NaN or infinity")
    return array


# ---------------------------------------------------------------- openpi websocket + msgpack


def _pack_array(obj: Any) -> Any:
    """openpi's msgpack_numpy encoding."""
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise ValueError(f"unsupported dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _unpack_array(obj: dict[Any, Any]) -> Any:
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


packb = functools.partial(msgpack.packb, default=_pack_array)
unpackb = functools.partial(msgpack.unpackb, object_hook=_unpack_array)


class OpenPiPolicy:
    """Client of an openpi policy server: it sends metadata first; then obs dict → {"actions": array}."""

    supports_prefix = False
    needs_ground_truth = False

    def __init__(self, url: str, *, language: str = "install the self-tapping nuts", timeout_s: float = 10.0,
                 max_reply_bytes: int = MAX_REPLY_BYTES, action_dim: int | None = None) -> None:
        self.url = url
        self.language = language
        self.timeout_s = timeout_s
        self.max_reply_bytes = max_reply_bytes
        self.action_dim = action_dim
        self.metadata: dict[str, Any] = {}
        self.version = f"openpi@{urlsplit(url).netloc}"
        self.ws: Any = None

    def connect(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        try:
            self.ws = connect(self.url, open_timeout=self.timeout_s, close_timeout=2.0, max_size=self.max_reply_bytes,
                              compression=None, proxy=None).__enter__()
            first = self.ws.recv(timeout=self.timeout_s)
        except (OSError, TimeoutError, WebSocketException) as error:
            self.close()
            raise RemotePolicyError(f"cannot start a session with the openpi server {self.url}: {error}") from None
        if isinstance(first, str):
            self.close()
            raise RemotePolicyError(f"openpi server sent text instead of its metadata: {first[:200]!r}")
        metadata = self._unpack(first)
        self.metadata = metadata if isinstance(metadata, dict) else {}

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - closing a broken link is best effort
                pass
            self.ws = None

    def _unpack(self, raw: bytes) -> Any:
        try:
            return unpackb(raw)
        except Exception as error:  # noqa: BLE001 - any decoding failure is a malformed reply
            raise RemotePolicyError(f"openpi reply is not valid msgpack: {type(error).__name__}: {error}") from None

    def infer(self, observation: Any, prefix: np.ndarray | None = None) -> PolicyOutput:
        from websockets.exceptions import ConnectionClosed, WebSocketException

        if self.ws is None:
            self.connect()
        state, images = _observation_parts(observation)
        request: dict[str, Any] = {"observation/state": state, "prompt": self.language}
        for camera, image in images.items():
            request[f"observation/{camera}"] = np.ascontiguousarray(image, dtype=np.uint8)
        try:
            self.ws.send(packb(request))
            reply = self.ws.recv(timeout=self.timeout_s)
        except TimeoutError:
            self.close()
            raise RemotePolicyError(f"openpi server did not answer within {self.timeout_s:.1f} s") from None
        except ConnectionClosed as error:
            self.close()
            raise RemotePolicyError(f"openpi server closed the connection: {error}") from None
        except (OSError, WebSocketException) as error:
            self.close()
            raise RemotePolicyError(f"openpi link error: {error}") from None
        if isinstance(reply, str):
            raise RemotePolicyError(f"openpi server error: {reply[:500]}")
        decoded = self._unpack(reply)
        if not isinstance(decoded, dict) or "actions" not in decoded:
            raise RemotePolicyError("openpi reply has no 'actions'")
        actions = _to_numpy(decoded["actions"])
        if actions.ndim == 1:
            actions = actions[None, :]
        if actions.ndim != 2 or actions.shape[0] < 1:
            raise RemotePolicyError(f"openpi actions have shape {actions.shape}; expected (T, D)")
        if self.action_dim is not None:
            actions = actions[:, : self.action_dim]
        return PolicyOutput(actions, None)


# ---------------------------------------------------------------- specs


def xr0_from_spec(spec: str, **options: Any) -> Xr0Policy:
    """xr0://HOST:PORT[?task_id=libero_all&prefix=1]"""
    parts = urlsplit(spec)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"XR0 policy must be xr0://HOST:PORT, got {spec!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if "task_id" in query:
        options["task_id"] = query["task_id"]
    if query.get("prefix") in ("1", "true", "yes"):
        options["prefix"] = True
    return Xr0Policy(parts.hostname, parts.port, **options)


def openpi_from_spec(spec: str, **options: Any) -> OpenPiPolicy:
    parts = urlsplit(spec)
    if not parts.hostname:
        raise ValueError(f"openpi policy must be ws://HOST:PORT, got {spec!r}")
    return OpenPiPolicy(spec, **options)
