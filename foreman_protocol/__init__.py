"""Foreman's realtime protocol: the schemas of docs/protocol.md, shared by server, agent and tests.

Django-free on purpose: the robot agent imports it too.
"""

from foreman_protocol.messages import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    dump_message,
    parse_browser_message,
    parse_datachannel_message,
    parse_robot_message,
    parse_server_to_robot,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "dump_message",
    "parse_browser_message",
    "parse_datachannel_message",
    "parse_robot_message",
    "parse_server_to_robot",
]
