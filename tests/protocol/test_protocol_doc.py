"""docs/protocol.md is the single source of truth: the message types it names per direction are exactly
the ones foreman_protocol parses, and every JSON example in it validates against the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from foreman_protocol import messages as m

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def section(title: str) -> str:
    """The text under a `## ` or `### ` heading, up to the next heading of the same or higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", DOC, re.M)
    assert match, f"docs/protocol.md has no section {title!r}"
    level = len(match.group(1))
    rest = DOC[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def bold_types(text: str) -> set[str]:
    return set(re.findall(r"\*\*`([a-z_]+)`\*\*", text))


def table_types(text: str) -> set[str]:
    """First-column names of a table row: `| `pause` / `resume` | ...`."""
    names: set[str] = set()
    for first, second in re.findall(r"^\| `([a-z_]+)`(?: / `([a-z_]+)`)? \|", text, re.M):
        names |= {first, second} - {""}
    return names


def json_examples(text: str) -> list[dict]:
    """Every JSON object in fenced blocks: whole blocks, or one object per line."""
    examples = []
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        try:
            examples.append(json.loads(block))
            continue
        except json.JSONDecodeError:
            pass
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    examples.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return [e for e in examples if isinstance(e, dict) and "type" in e]


def test_robot_to_server_types_match_the_code():
    assert bold_types(section("Robot → server")) == set(m.ROBOT_MESSAGE_TYPES)


def test_server_to_robot_types_match_the_code():
    assert bold_types(section("Server → robot")) == set(m.SERVER_TO_ROBOT_TYPES)


def test_browser_to_server_types_match_the_code():
    assert table_types(section("Browser → server")) == set(m.BROWSER_MESSAGE_TYPES)


def test_server_to_browser_types_are_documented():
    documented = bold_types(section("Server → browser"))
    assert {"snapshot", "telemetry_batch", "robot", "intervention", "signal", "result", "error", "teleop_state"} <= documented


def test_data_channel_types_are_documented():
    text = section("Teleop commands (data channel `teleop`, or WebSocket fallback)")
    for kind in m.DATACHANNEL_MESSAGE_TYPES:
        assert f'"type": "{kind}"' in text, kind


@pytest.mark.parametrize(
    ("title", "parse"),
    [
        ("Robot → server", m.parse_robot_message),
        ("Server → robot", m.parse_server_to_robot),
        ("Teleop commands (data channel `teleop`, or WebSocket fallback)", m.parse_datachannel_message),
    ],
)
def test_every_json_example_validates(title, parse):
    examples = json_examples(section(title))
    assert examples, f"no JSON examples under {title!r}"
    for example in examples:
        try:
            parse(json.dumps(example))
        except m.ProtocolError as error:
            pytest.fail(f"example under {title!r} does not validate: {example} -> {error.code}: {error.message}")


def test_every_error_code_the_code_uses_is_documented():
    table = section("Errors")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    source = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[2] / "webapp" / "fleet").rglob("*.py"))
    source += (Path(m.__file__)).read_text()
    used = set(re.findall(r'(?:code = |ProtocolError\(|send_error\()"([a-z_]+)"', source))
    assert used, "found no error codes in the code"
    assert used <= documented | {"internal"}, used - documented
