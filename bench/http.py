"""A minimal HTTP/1.1 keep-alive client for the benchmarks.

One request at a time on one connection, ``Content-Length`` bodies only (what uvicorn
sends for every answer of ours). Small on purpose: a general client (httpx) costs close
to a millisecond of its own per request, which would hide what the API costs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass


class HttpError(Exception):
    """The server's answer is not HTTP/1.1 as this client reads it."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def build_request(
    method: str, host: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """The request's bytes (keep-alive, a Content-Length whenever there is a body)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (names lower-cased) of a response head ending in a blank line."""
    try:
        status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        if not version.startswith("HTTP/1."):
            raise ValueError(version)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status), headers
    except ValueError as exc:
        raise HttpError(f"not an HTTP/1.x response head: {head[:200]!r}") from exc


class HttpConnection:
    """One keep-alive connection to ``host:port``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self._reader = reader
        self._writer = writer
        self.host = host

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        self._writer.write(build_request(method, self.host, path, body, headers))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status, response_headers = parse_head(head)
        if "content-length" not in response_headers:
            raise HttpError("a response without Content-Length (chunked is not supported)")
        content = await self._reader.readexactly(int(response_headers["content-length"]))
        return HttpResponse(status, response_headers, content)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):  # the server went first: closed is what we wanted
            await self._writer.wait_closed()
