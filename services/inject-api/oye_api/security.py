"""Hardening for every HTTP response and request of the API, as one pure ASGI middleware.

**Headers** on every response the app produces (a 500 from Starlette's outermost error
handler is the one exception): ``X-Content-Type-Options: nosniff``, ``X-Frame-Options:
DENY``, ``Referrer-Policy: no-referrer``, a Content-Security-Policy, ``Cache-Control:
no-store`` under ``/api`` (answers there are live state and may carry a generated
password), and ``Strict-Transport-Security`` when the request came over https (uvicorn
sets the scheme from ``X-Forwarded-Proto`` for a trusted proxy). A header the route set
itself is kept.

The API answers JSON, so its policy allows nothing to load and nothing to frame it
(:data:`API_POLICY`). The interactive docs are HTML pages that FastAPI builds from assets
on a CDN (jsDelivr) and one inline bootstrap script, so they get their own policy
(:func:`docs_policy`): scripts only from that CDN plus the exact inline scripts of the page
(by their SHA-256, computed from the page as it is sent), ``connect-src 'self'`` for the
OpenAPI document and "Try it out". It is laxer on styles: Swagger UI and ReDoc set inline
styles at run time, which needs ``style-src 'unsafe-inline'``; ReDoc also loads Google
Fonts, its logo from its own CDN and starts a worker from a ``blob:`` URL. Framing stays
forbidden everywhere. (Checked in headless Chromium, with the CDN's files served from the
npm packages: both pages render, Swagger UI's "Try it out" works, no CSP violation.)

**Request bodies** larger than ``OYE_MAX_HTTP_BODY_BYTES`` get 413 with a JSON ``detail``:
at once when ``Content-Length`` says so (nothing is read), otherwise as soon as the
streamed chunks (chunked transfer encoding) add up to more; the body is never held here.

**Credentials in URLs** are refused: a query parameter named like a secret
(:data:`SECRET_PARAMETERS`) gets 400 asking for the ``Authorization`` header instead, and
its value is replaced by ``***`` in the request's query string first, so uvicorn's access
log (written from the same scope) never shows it. A ``user:password@`` part of a URL never
reaches the server: clients turn it into an ``Authorization`` header (curl) or drop it; an
absolute-form request line carrying one is not something browsers or curl send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Query parameter names refused as credentials (compared lower-case, ``-`` read as ``_``).
SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "secret", "token", "apikey", "api_key", "authorization"}
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: Where FastAPI's docs pages load their assets from (fastapi.openapi.docs).
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_FAVICON = "https://fastapi.tiangolo.com"
#: ReDoc's "API docs by Redocly" logo.
REDOC_LOGO = "https://cdn.redoc.ly"
HSTS = "max-age=31536000"
#: The docs pages are small; a larger one is sent with the API's policy, not hashed.
MAX_DOCS_PAGE = 256 * 1024

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL | re.IGNORECASE)


class BodyTooLarge(HTTPException):
    """A request body over the limit; FastAPI re-raises HTTPExceptions from reading a body,
    so this reaches the app's handler (a JSON 413) or, failing that, this middleware."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes (OYE_MAX_HTTP_BODY_BYTES)",
        )


def secret_parameters(query_string: bytes) -> list[str]:
    """The names of the query parameters that look like credentials, in order."""
    text = query_string.decode("latin-1")
    return [
        name
        for name, _ in parse_qsl(text, keep_blank_values=True)
        if name.strip().lower().replace("-", "_") in SECRET_PARAMETERS
    ]


def redacted_query(query_string: bytes, names: Iterable[str]) -> bytes:
    """The query string with the values of ``names`` replaced by ``***``."""
    hidden = set(names)
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return "&".join(
        f"{quote(name, safe='')}={'***' if name in hidden else quote(value, safe='')}"
        for name, value in pairs
    ).encode("latin-1", errors="replace")


def inline_script_hashes(page: bytes) -> list[str]:
    """CSP sources (``'sha256-...'``) for each inline ``<script>`` of an HTML page."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(page)
    ]


def docs_policy(page: bytes) -> str:
    """The policy for a docs page: its CDN, its own inline scripts, nothing else."""
    scripts = " ".join([DOCS_CDN, *inline_script_hashes(page)])
    return (
        "default-src 'none'; "
        f"script-src {scripts}; "
        f"style-src {DOCS_CDN} https://fonts.googleapis.com 'unsafe-inline'; "
        "font-src https://fonts.gstatic.com; "
        f"img-src 'self' data: {DOCS_FAVICON} {DOCS_CDN} {REDOC_LOGO}; "
        "connect-src 'self'; "
        "worker-src blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def _content_length(scope: Scope) -> int | str | None:
    """The declared body length; None without one, ``"bad"`` if it is not a number."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else "bad"
    return None


class SecurityMiddleware:
    """See the module's docstring. ``docs_paths``: the HTML pages that get the docs policy."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, docs_paths: Iterable[str]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        secure = scope.get("scheme") == "https"
        headers = _headers(path, secure)
        if names := secret_parameters(scope.get("query_string", b"")):
            scope["query_string"] = redacted_query(scope["query_string"], names)
            detail = (
                f"credentials do not belong in the URL (query parameter {names[0]!r}): "
                "send them in the Authorization header (HTTP Basic)"
            )
            await _json(send, 400, detail, headers)
            return
        declared = _content_length(scope)
        if declared == "bad":
            await _json(send, 400, "Content-Length is not a number", headers)
            return
        if isinstance(declared, int) and declared > self.max_body_bytes:
            await _json(send, 413, BodyTooLarge(self.max_body_bytes).detail, headers)
            return
        await self._call(scope, receive, send, headers, docs=path in self.docs_paths)

    async def _call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        *,
        docs: bool,
    ) -> None:
        limit = self.max_body_bytes
        received = 0
        started = False
        held: Message | None = None  # a docs page's start, sent once its body is known
        page = bytearray()

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def secured_send(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": _merged(message.get("headers", []), headers)}
                if docs:
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                page.extend(message.get("body", b""))
                if message.get("more_body", False) and len(page) <= MAX_DOCS_PAGE:
                    return
                start, held = held, None
                policy = docs_policy(bytes(page)) if len(page) <= MAX_DOCS_PAGE else API_POLICY
                await send(_with_policy(start, policy))
                message = {**message, "body": bytes(page)}
                page.clear()
            await send(message)

        try:
            await self.app(scope, counted_receive, secured_send)
        except BodyTooLarge as exc:
            # Raised through a route that does not let HTTPExceptions through.
            if started:
                raise
            await _json(send, exc.status_code, exc.detail, headers)


def _headers(path: str, secure: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", API_POLICY.encode()),
    ]
    if path == "/api" or path.startswith("/api/"):
        headers.append((b"cache-control", b"no-store"))
    if secure:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


def _merged(
    own: Iterable[tuple[bytes, bytes]], ours: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The route's headers, plus each of ours that the route did not set itself."""
    result = list(own)
    present = {name.lower() for name, _ in result}
    result += [(name, value) for name, value in ours if name not in present]
    return result


def _with_policy(start: Message, policy: str) -> Message:
    headers = [
        (name, value)
        for name, value in start["headers"]
        if name.lower() != b"content-security-policy"
    ]
    return {**start, "headers": [*headers, (b"content-security-policy", policy.encode())]}


async def _json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
