"""The head of an HTTP/1.1 message, as both WebSocket handshakes read it (pure).

The relay reads only what a handshake needs: a start line and header lines, no body, no
folded lines (RFC 9112 forbids them), limits as websockets' (a longer head or more lines
is not a peer speaking HTTP). Values are latin-1, as the RFC's ``obs-text`` allows.
"""

from __future__ import annotations

from websockets.datastructures import Headers

#: As websockets' limits.
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 128
END = b"\r\n\r\n"


class BadHead(ValueError):
    """Not an HTTP head the relay accepts; the message says why."""


def split_head(head: bytes) -> tuple[str, Headers]:
    """The start line and the headers of a head (without its blank line)."""
    start_line, *lines = head.decode("latin-1").split("\r\n")
    if len(lines) > MAX_HEADERS:
        raise BadHead("too many HTTP headers")
    headers = Headers()
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise BadHead(f"invalid HTTP header line: {line[:100]!r}")
        headers[name] = value.strip(" \t")
    return start_line, headers


def join_head(lines: list[str]) -> bytes:
    """A head to send; a value carrying a line break (one that came from a peer) would
    smuggle in a header of its own, so it is refused."""
    if any("\r" in line or "\n" in line for line in lines):
        raise BadHead("line break in a header value")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
