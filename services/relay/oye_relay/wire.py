"""NATS ``HPUB`` commands, encoded once when a message is queued (pure, no I/O).

nats-py's ``publish`` rebuilds a message's header block on every call, with a regex match,
``strip`` and ``translate`` per header; for the ~10 headers of every frame that was most of
the relay's publishing cost. The relay encodes each message here instead, once, and the
publisher hands the finished bytes to the client (:mod:`oye_relay.nats_commands`).

Header values are written as nats-py writes them: stripped, with CR and LF turned into
spaces, so a value taken from a peer (a message id, an action) can never start a header
line of its own. Header names are the constants of :mod:`oye_shared.headers`.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The first line of a NATS header block.
HEADER_START = "NATS/1.0\r\n"


def header_value(value: str) -> str:
    """``value`` as it may stand in a header line: what nats-py's ``publish`` would send."""
    value = value.strip()
    if "\r" in value or "\n" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    return value


def header_line(name: str, value: str) -> str:
    """One ``Name: value`` line, CRLF included; the value made safe by :func:`header_value`."""
    return f"{name}: {header_value(value)}\r\n"


def header_block(headers: Mapping[str, str]) -> bytes:
    """The header block of a message (the generic path: events, tests)."""
    lines = "".join(header_line(name, value) for name, value in headers.items())
    return f"{HEADER_START}{lines}\r\n".encode()


def hpub(subject: str, header: bytes, body: bytes) -> bytes:
    """The whole ``HPUB`` command; ``header`` is a block from :func:`header_block` or alike.

    ``subject`` must be a valid NATS subject (no whitespace): the relay's come from
    :class:`~oye_shared.subjects.Subjects`, whose tokens escape whitespace and controls.
    """
    size = len(header)
    return b"".join(
        (f"HPUB {subject} {size} {size + len(body)}\r\n".encode(), header, body, b"\r\n")
    )


def parse_hpub(command: bytes) -> tuple[str, dict[str, str], bytes]:
    """(subject, headers, body) of a command :func:`hpub` made: the way back to ``publish``."""
    line, _, rest = command.partition(b"\r\n")
    _, subject, header_size, total_size = line.decode().split(" ")
    header_end = int(header_size)
    block = rest[:header_end].decode()
    headers: dict[str, str] = {}
    for header in block.split("\r\n")[1:]:
        if header:
            name, _, value = header.partition(":")
            headers[name] = value.strip()
    return subject, headers, bytes(rest[header_end : int(total_size)])


def payload_size(command: bytes) -> int:
    """Header and body bytes of an :func:`hpub` command: what NATS's ``max_payload`` limits."""
    line = command[: command.index(b"\r\n")]
    return int(line.rsplit(b" ", 1)[1])
