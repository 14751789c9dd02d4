"""HPUB commands as the relay encodes them: exact headers, and no header a peer could add."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oye_relay.publisher import Publisher
from oye_relay.traffic import TrafficTap, inspect
from oye_relay.wire import header_block, header_value, hpub, parse_hpub, payload_size
from oye_shared import headers as h
from oye_shared.subjects import Direction, EventKind, Subjects

pytestmark = pytest.mark.unit

#: What nats-py's publish does to a header value (nats/aio/client.py, _send_publish).
NATS_PY_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
#: A header name as nats-py accepts it (an RFC 7230 token).
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass
class Queued:
    """Stands in for the publisher: keeps the commands queued."""

    commands: list[bytes] = field(default_factory=list)

    def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        self.commands.append(hpub(subject, header_block(headers), body))

    def publish_command(self, command: bytes) -> None:
        self.commands.append(command)


def tap(queued: Queued, charge_point_id: str = "CP-1") -> TrafficTap:
    return TrafficTap(
        publisher=cast(Publisher, queued),
        subjects=Subjects("oye"),
        charge_point_id=charge_point_id,
        relay_id="relay-a",
        session_id="s1",
        subprotocol="ocpp1.6",
    )


def test_an_hpub_command_has_the_sizes_nats_expects() -> None:
    """HPUB <subject> <header bytes> <total bytes>, the block, the body, CRLF."""
    header = header_block({"A": "1"})
    assert header == b"NATS/1.0\r\nA: 1\r\n\r\n"
    command = hpub("s.x", header, b"body")
    assert command == b"HPUB s.x 18 22\r\nNATS/1.0\r\nA: 1\r\n\r\nbody\r\n"
    assert payload_size(command) == 22
    assert parse_hpub(command) == ("s.x", {"A": "1"}, b"body")


@given(st.text())
def test_a_header_value_is_what_nats_py_would_send_and_never_breaks_a_line(value: str) -> None:
    """Stripped, CR and LF as spaces: the same bytes as nats-py's publish, on one line."""
    clean = header_value(value)
    assert clean == value.strip().translate(NATS_PY_NEWLINES)
    assert "\r" not in clean
    assert "\n" not in clean


def test_every_header_name_is_a_valid_token() -> None:
    """The names are written unchecked, so each must be one nats-py would have accepted."""
    names = [
        value
        for name, value in vars(h).items()
        if name.isupper()
        and not name.startswith("_")
        and isinstance(value, str)
        and name != "MALFORMED"
    ]
    assert len(names) == 14
    assert all(TOKEN.fullmatch(name) for name in names)


def test_a_frame_carries_exactly_the_documented_headers() -> None:
    """A CALL from the charger: every Oye-* header and Nats-Msg-Id, nothing else."""
    queued = Queued()
    message = '[2,"m1","Heartbeat",{}]'
    tap(queued).frame(Direction.UPSTREAM, message, inspect(message))
    subject, headers, body = parse_hpub(queued.commands[0])
    assert subject == "oye.frames.CP-1.UPSTREAM"
    assert body == message.encode()
    frame_id = headers[h.FRAME_ID]
    assert re.fullmatch(r"[0-9a-f]{32}", frame_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", headers[h.TIME])
    assert headers == {
        h.DIRECTION: "UPSTREAM",
        h.CHARGE_POINT: "CP-1",
        h.SUBPROTOCOL: "ocpp1.6",
        h.RELAY: "relay-a",
        h.TIME: headers[h.TIME],
        h.FRAME_ID: frame_id,
        h.NATS_MSG_ID: frame_id,
        h.BACKEND: "primary",
        h.MESSAGE_TYPE: "CALL",
        h.MESSAGE_ID: "m1",
        h.ACTION: "Heartbeat",
    }


def test_reply_malformed_binary_and_injected_frames_get_their_headers() -> None:
    """A reply names its call's action; a malformed binary frame says why; an injection
    response names no backend; a secondary's frame names it."""
    queued = Queued()
    traffic = tap(queued)
    reply = '[3,"m1",{}]'
    traffic.frame(Direction.DOWNSTREAM, reply, inspect(reply), action="Heartbeat")
    broken = b'[2,"m2"'
    traffic.frame(Direction.UPSTREAM, broken, inspect(broken))
    traffic.frame(Direction.INJECTION_RESPONSE, reply, inspect(reply))
    traffic.frame(Direction.UPSTREAM, reply, inspect(reply), backend="billing")
    parsed = [parse_hpub(command)[1] for command in queued.commands]
    fixed = {h.DIRECTION, h.CHARGE_POINT, h.SUBPROTOCOL, h.RELAY, h.TIME, h.FRAME_ID}
    rest = [
        {k: v for k, v in headers.items() if k not in fixed | {h.NATS_MSG_ID}} for headers in parsed
    ]
    assert rest == [
        {
            h.BACKEND: "primary",
            h.MESSAGE_TYPE: "CALLRESULT",
            h.MESSAGE_ID: "m1",
            h.ACTION: "Heartbeat",
        },
        {h.BACKEND: "primary", h.MESSAGE_TYPE: "MALFORMED", h.ERROR: "not-json", h.BINARY: "1"},
        {h.MESSAGE_TYPE: "CALLRESULT", h.MESSAGE_ID: "m1"},
        {h.BACKEND: "billing", h.MESSAGE_TYPE: "CALLRESULT", h.MESSAGE_ID: "m1"},
    ]
    assert all(headers[h.NATS_MSG_ID] == headers[h.FRAME_ID] for headers in parsed)
    assert len({headers[h.FRAME_ID] for headers in parsed}) == 4


def test_a_peer_cannot_add_a_header_line_through_a_message_id_or_action() -> None:
    """CR and LF inside a message id or an action become spaces: still one header each."""
    queued = Queued()
    message = '[2,"m\\r\\nOye-Relay: evil","Heart\\nNats-Msg-Id: x",{}]'
    tap(queued).frame(Direction.UPSTREAM, message, inspect(message))
    _, headers, _ = parse_hpub(queued.commands[0])
    assert headers[h.MESSAGE_ID] == "m  Oye-Relay: evil"
    assert headers[h.ACTION] == "Heart Nats-Msg-Id: x"
    assert headers[h.RELAY] == "relay-a"
    assert headers[h.NATS_MSG_ID] == headers[h.FRAME_ID]
    block = queued.commands[0].split(b"\r\n\r\n", 1)[0]
    assert block.count(b"\r\n") == 1 + 11  # the HPUB line, the NATS/1.0 line, 10 headers


def test_an_event_goes_through_the_generic_path_with_its_headers() -> None:
    """Events keep their own header set (no message type)."""
    queued = Queued()
    tap(queued, "CP ü").event(EventKind.CONNECTED, remoteAddress="10.0.0.1")
    subject, headers, body = parse_hpub(queued.commands[0])
    assert subject == Subjects("oye").events("CP ü", EventKind.CONNECTED)
    assert headers[h.CHARGE_POINT] == "CP ü"
    assert set(headers) == {h.CHARGE_POINT, h.TIME, h.FRAME_ID, h.NATS_MSG_ID, h.RELAY}
    assert b'"remoteAddress":"10.0.0.1"' in body
