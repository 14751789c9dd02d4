"""Charger credentials and the API's hardening, without I/O: the shared contract's helpers,
what the owner's routes show of a record, and the security middleware on an in-memory
ASGI app."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from oye_api.charger_credentials import is_pending, pending_since
from oye_api.routes.charger_auth import Admission
from oye_api.security import (
    API_POLICY,
    BodyTooLarge,
    SecurityMiddleware,
    docs_policy,
    inline_script_hashes,
    redacted_query,
    secret_parameters,
)
from oye_shared.charger_auth import (
    MAX_CHARGER_PASSWORD,
    ChargerCredential,
    basic_credentials,
    charger_hasher,
    new_charger_password,
    password_problem,
    verify_password,
)
from oye_shared.logs import configure_logging

pytestmark = pytest.mark.unit


# --- the shared contract ------------------------------------------------------------------


def test_generated_passwords_are_long_random_and_acceptable() -> None:
    """40 unambiguous letters and digits, never twice the same, always acceptable."""
    passwords = {new_charger_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == MAX_CHARGER_PASSWORD
        assert password.isalnum()
        assert not set(password) & set("0O1lI")
        assert password_problem(password) is None


@pytest.mark.parametrize(
    ("password", "acceptable"),
    [
        ("x" * 15, False),
        ("x" * 16, True),
        ("x" * 40, True),
        ("x" * 41, False),
        ("sixteen chars ok", True),
        ("päss-word-0123456", False),
        ("line\nbreak-012345", False),
    ],
)
def test_charger_passwords_follow_ocpps_basic_auth_password_rules(
    password: str, acceptable: bool
) -> None:
    """16 to 40 printable ASCII characters."""
    assert (password_problem(password) is None) is acceptable


def test_basic_credentials_are_read_only_from_a_well_formed_basic_header() -> None:
    """The scheme is case-insensitive; the password may contain colons; anything else
    (no header, another scheme, bad base64, no colon, bad UTF-8) is None."""

    def header(raw: bytes) -> str:
        return "Basic " + base64.b64encode(raw).decode()

    assert basic_credentials(header(b"CP1:pass:word")) == ("CP1", "pass:word")
    assert basic_credentials("basic " + base64.b64encode(b"CP1:x").decode()) == ("CP1", "x")
    for bad in (None, "", "Bearer abc", "Basic !!!", header(b"no-colon"), header(b"\xff:\xfe")):
        assert basic_credentials(bad) is None


def test_a_hash_verifies_its_password_only() -> None:
    """argon2id, and a wrong password or a broken hash is False, never an exception."""
    hasher = charger_hasher()
    stored = hasher.hash("the-right-password-1")
    assert stored.startswith("$argon2id$")
    assert verify_password(hasher, stored, "the-right-password-1")
    assert not verify_password(hasher, stored, "the-wrong-password-1")
    assert not verify_password(hasher, "not a hash", "the-right-password-1")


# --- what the owner sees of a record ------------------------------------------------------


def test_the_owners_view_of_a_record_never_carries_a_hash() -> None:
    """Admission shows whether there is a password, not the hash (nor a pending one)."""
    record = ChargerCredential(
        charge_point_id="CP",
        approved=False,
        password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        pending_since="2026-01-01T00:00:00Z",
        pending_address="192.0.2.1",
        pending_password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$b3RoZXI",
    )
    shown = Admission.of(record).model_dump_json(by_alias=True)
    assert "argon2" not in shown
    assert json.loads(shown)["hasPassword"] is True


@pytest.mark.parametrize(
    ("fields", "pending"),
    [
        ({}, False),
        ({"pending_since": "t1"}, True),
        ({"pending_address": "192.0.2.1"}, True),  # a revoked charger that came back
        ({"approved": True, "pending_since": "t1"}, False),
    ],
)
def test_pending_means_unapproved_and_noted_by_a_relay(
    fields: dict[str, Any], pending: bool
) -> None:
    assert is_pending(ChargerCredential(charge_point_id="CP", **fields)) is pending


def test_a_charger_waits_since_its_first_attempt_or_its_records_last_change() -> None:
    first = ChargerCredential(charge_point_id="CP", pending_since="t1", updated="t2")
    again = ChargerCredential(charge_point_id="CP", pending_address="a", updated="t3")
    assert (pending_since(first), pending_since(again)) == ("t1", "t3")


# --- URLs, policies -----------------------------------------------------------------------


def test_secret_looking_query_parameters_are_found_by_name_whatever_their_case() -> None:
    query = b"limit=5&Password=x&API-KEY=y&tokens=1&api_key&secretary=z"
    assert secret_parameters(query) == ["Password", "API-KEY", "api_key"]
    assert secret_parameters(b"") == []
    assert secret_parameters(b"%70assword=x") == ["password"]  # percent-encoded name


def test_the_redacted_query_keeps_everything_but_the_secrets_values() -> None:
    redacted = redacted_query(b"limit=5&password=hunter2&a=b%20c", ["password"])
    assert redacted == b"limit=5&password=***&a=b%20c"


def test_inline_scripts_are_hashed_as_a_browser_hashes_them() -> None:
    page = b'<script src="x.js"></script><script>\nrun(1)\n</script><SCRIPT>b()</SCRIPT>'
    expected = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in (b"\nrun(1)\n", b"b()")
    ]
    assert inline_script_hashes(page) == expected
    policy = docs_policy(page)
    assert all(source in policy for source in expected)
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy


def test_the_api_policy_allows_nothing() -> None:
    assert API_POLICY.startswith("default-src 'none';")
    assert "frame-ancestors 'none'" in API_POLICY


# --- the middleware on an in-memory app ---------------------------------------------------


class Recorder:
    """An ASGI app that reads its whole body and answers what it read, and a client."""

    def __init__(self, *, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.read = 0
        self.called = False
        self.headers = headers or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.read += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"<script>go()</script>" if scope["path"] == "/docs" else b"{}"
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": body})


async def call(
    app: Any,
    path: str = "/api/x",
    *,
    query: bytes = b"",
    chunks: list[bytes] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    scheme: str = "http",
    limit: int = 100,
) -> tuple[int, dict[bytes, bytes], bytes, int]:
    """(status, headers, body, chunks pulled) of one request through the middleware."""
    middleware = SecurityMiddleware(app, max_body_bytes=limit, docs_paths=["/docs"])
    pending = list(chunks or [b""])
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": headers or [],
        "scheme": scheme,
    }
    await middleware(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body, pulled


async def test_headers_are_added_without_replacing_the_routes_own() -> None:
    app = Recorder(headers=[(b"cache-control", b"max-age=5")])
    status, headers, _, _ = await call(app)
    assert status == 200
    assert headers[b"cache-control"] == b"max-age=5"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"content-security-policy"] == API_POLICY.encode()
    assert b"strict-transport-security" not in headers
    _, secure, _, _ = await call(Recorder(), scheme="https")
    assert secure[b"strict-transport-security"].startswith(b"max-age=")


async def test_the_docs_page_gets_a_policy_with_its_scripts_hash() -> None:
    _, headers, body, _ = await call(Recorder(), "/docs")
    assert body == b"<script>go()</script>"
    policy = headers[b"content-security-policy"].decode()
    digest = base64.b64encode(hashlib.sha256(b"go()").digest()).decode()
    assert f"'sha256-{digest}'" in policy


async def test_a_declared_oversized_body_is_refused_without_calling_the_app() -> None:
    app = Recorder()
    status, _, body, pulled = await call(app, headers=[(b"content-length", b"101")])
    assert (status, pulled, app.called) == (413, 0, False)
    assert json.loads(body)["detail"] == BodyTooLarge(100).detail


async def test_a_streamed_oversized_body_stops_being_read_at_the_limit() -> None:
    app = Recorder()
    status, _, _, pulled = await call(app, chunks=[b"x" * 40] * 10)
    assert status == 413
    assert pulled == 3  # 120 bytes > 100: the rest is never pulled


async def test_a_body_at_the_limit_is_read_whole() -> None:
    app = Recorder()
    status, _, _, _ = await call(app, chunks=[b"x" * 50] * 2)
    assert (status, app.read) == (200, 100)


async def test_a_password_in_the_query_is_400_without_calling_the_app_or_echoing_it() -> None:
    app = Recorder()
    status, _, body, _ = await call(app, query=b"password=hunter2")
    assert (status, app.called) == (400, False)
    assert b"Authorization header" in body
    assert b"hunter2" not in body


# --- logging -------------------------------------------------------------------------------


def test_the_services_logging_never_lets_websockets_log_handshake_headers() -> None:
    """websockets logs every handshake header (Authorization too) at DEBUG; the services'
    logging set-up keeps it at WARNING or above, even with OYE_LOG_LEVEL=DEBUG."""
    root, websockets_logger = logging.getLogger(), logging.getLogger("websockets")
    saved = (root.level, list(root.handlers), websockets_logger.level)
    try:
        configure_logging("DEBUG")
        assert websockets_logger.getEffectiveLevel() >= logging.WARNING
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        websockets_logger.setLevel(saved[2])
