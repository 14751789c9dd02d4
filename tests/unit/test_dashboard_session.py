"""The dashboard's session cookie: signed claims that only the key's holder can make."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oye_api.dashboard.session import LIFETIME_SECONDS, SessionClaims, SessionCodec

pytestmark = pytest.mark.unit

KEY = b"k" * 32
NOW = 1_750_000_000.0


def codec(now: float = NOW, key: bytes = KEY) -> SessionCodec:
    return SessionCodec(key, clock=lambda: now)


def test_an_issued_cookie_reads_back_as_its_claims() -> None:
    """User, passwordChanged and an expiry one lifetime from now."""
    value = codec().issue("admin", "2025-06-01T00:00:00.000000Z")
    assert codec().read(value) == SessionClaims(
        user="admin",
        password_changed="2025-06-01T00:00:00.000000Z",
        expires=NOW + LIFETIME_SECONDS,
    )


def test_an_expired_cookie_is_refused() -> None:
    """At its expiry and after, the cookie names nobody."""
    value = codec().issue("admin", "t")
    assert codec(NOW + LIFETIME_SECONDS - 1).read(value) is not None
    assert codec(NOW + LIFETIME_SECONDS).read(value) is None


def test_a_cookie_signed_with_another_key_is_refused() -> None:
    """Another deployment's (or an attacker's) key makes cookies this one refuses."""
    assert codec().read(codec(key=b"x" * 32).issue("admin", "t")) is None


@pytest.mark.parametrize("part", [0, 1, 2])
def test_changing_any_part_of_a_cookie_breaks_it(part: int) -> None:
    """Version, claims or signature: one character changed, the cookie is refused."""
    parts = codec().issue("admin", "t").split(".")
    parts[part] = parts[part][:-1] + ("A" if parts[part][-1] != "A" else "B")
    assert codec().read(".".join(parts)) is None


def test_a_short_key_is_refused() -> None:
    """A key under 16 bytes would make forgeries cheap."""
    with pytest.raises(ValueError, match="16 bytes"):
        SessionCodec(b"short")


@given(st.text(max_size=300))
def test_reading_arbitrary_text_never_raises(value: str) -> None:
    """Whatever a browser sends as the cookie, the answer is claims or None."""
    assert codec().read(value) is None
