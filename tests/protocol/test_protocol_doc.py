"""docs/protocol.md is the single source of truth: the message types it names per direction are exactly
the ones foreman_protocol parses, and every JSON example in it validates against the schema."""

from __future__ import annotations

import json
import re
import typing
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
    """Every JSON object in fenced json blocks (a block may hold several, each over one or more lines)."""
    decoder = json.JSONDecoder()
    examples = []
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        at = 0
        while (start := block.find("{", at)) != -1:
            try:
                example, at = decoder.raw_decode(block, start)
            except json.JSONDecodeError as error:
                pytest.fail(f"a JSON example does not parse: {error}: {block[start:start + 120]!r}")
            examples.append(example)
    return [e for e in examples if isinstance(e, dict) and "type" in e]


def test_robot_to_server_types_match_the_code():
    assert bold_types(section("Robot → server")) == set(m.ROBOT_MESSAGE_TYPES)


def test_server_to_robot_types_match_the_code():
    assert bold_types(section("Server → robot")) == set(m.SERVER_TO_ROBOT_TYPES)


def test_browser_to_server_types_match_the_code():
    assert table_types(section("Browser → server")) == set(m.BROWSER_MESSAGE_TYPES)


def test_server_to_browser_types_match_the_code():
    assert bold_types(section("Server → browser")) == set(m.SERVER_TO_BROWSER_TYPES)


def example_types(title: str) -> set[str]:
    return {example["type"] for example in json_examples(section(title))}


def test_data_channel_types_match_the_code():
    assert example_types("Browser → agent (`teleop` channel)") == set(m.DATACHANNEL_MESSAGE_TYPES)
    assert example_types("Agent → browser (`teleop` and `clock` channels)") == set(m.AGENT_TO_VIEWER_TYPES)


def test_every_message_type_has_an_example():
    """Each direction's examples cover every message type of that direction, so the next test checks them all."""
    for title, types in [("Robot → server", m.ROBOT_MESSAGE_TYPES), ("Server → robot", m.SERVER_TO_ROBOT_TYPES - {"error", "teleop"}),
                         ("Server → browser", m.SERVER_TO_BROWSER_TYPES - {"error"})]:
        assert types <= example_types(title), (title, types - example_types(title))
    assert "error" in example_types("Errors")


@pytest.mark.parametrize(
    ("title", "parse"),
    [
        ("Errors", m.parse_server_to_robot),
        ("Robot → server", m.parse_robot_message),
        ("Server → robot", m.parse_server_to_robot),
        ("Server → browser", m.parse_server_to_browser),
        ("Browser → agent (`teleop` channel)", m.parse_datachannel_message),
        ("Agent → browser (`teleop` and `clock` channels)", m.parse_agent_to_viewer),
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


def test_error_codes_match_the_code():
    table = section("Errors")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == set(typing.get_args(m.ErrorCode))


def test_every_documented_error_code_is_sent_somewhere():
    """A code in the table that nothing sends is a promise the server does not keep."""
    root = Path(__file__).resolve().parents[2]
    source = "\n".join(p.read_text() for p in (root / "webapp").rglob("*.py")) + Path(m.__file__).read_text()
    sent = set(re.findall(r'(?:code(?::[^=]+)? = |ProtocolError\(|send_error\()"([a-z_]+)"', source))
    assert set(typing.get_args(m.ErrorCode)) <= sent, set(typing.get_args(m.ErrorCode)) - sent
