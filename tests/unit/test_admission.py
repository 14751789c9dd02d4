"""Reading the charger's handshake: the id from /ocpp/{id}, the offered subprotocols, and
whether it may connect."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from oye_relay.admission import (
    Admission,
    AuthMode,
    Refusal,
    admit,
    auth_mode,
    charge_point_id_from_path,
    choose_standalone_subprotocol,
    forwards_authorization,
    offered_subprotocols,
)
from oye_relay.pending import pending_answer
from oye_shared.charger_auth import ChargerCredential
from oye_shared.frames import parse_frame

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/ocpp/CP001", "CP001"),
        ("/ocpp/RDAM%20123", "RDAM 123"),
        ("/ocpp/a.b%2Ac%3E", "a.b*c>"),
        ("/ocpp/100%25", "100%"),
        ("/ocpp/Z%C3%BCrich", "Zürich"),
        ("/ocpp/a%2Fb", "a/b"),
        ("/ocpp/CP1?token=x", "CP1"),
    ],
)
def test_the_id_is_the_last_segment_percent_decoded_once(path: str, expected: str) -> None:
    """The raw segment is percent-decoded exactly once (not form-decoded)."""
    assert charge_point_id_from_path(path, max_length=64) == expected


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ocpp/", 400),
        ("/ocpp/" + "x" * 65, 400),
        ("/ocpp/a%0Ab", 400),
        ("/ocpp/%20a", 400),
        ("/ocpp/%FF", 400),
        ("/other/CP1", 404),
        ("/ocpp/a/b", 404),
    ],
)
def test_bad_paths_are_refused_with_a_clear_status(path: str, status: int) -> None:
    """Empty, over-long, control characters, bad UTF-8 and wrong paths are refused."""
    refusal = charge_point_id_from_path(path, max_length=64)
    assert isinstance(refusal, Refusal)
    assert refusal.status == status
    assert refusal.reason


def test_offers_are_read_in_the_clients_order_from_joined_or_repeated_headers() -> None:
    """Both 'a,b' in one header and several headers give the client's order."""
    assert offered_subprotocols(["ocpp2.0.1,ocpp1.6", "ocpp2.1"]) == [
        "ocpp2.0.1",
        "ocpp1.6",
        "ocpp2.1",
    ]


def test_standalone_takes_the_first_offer_it_speaks() -> None:
    """Without a CSMS the charger's preference decides among supported versions."""
    assert choose_standalone_subprotocol(["ocpp1.5", "ocpp2.0.1", "ocpp1.6"]) == "ocpp2.0.1"
    assert choose_standalone_subprotocol(["ocpp1.2"]) is None


# Who may connect.

REVOKED = Refusal(403, "this charger's access was revoked")


def _known(password_hash: str | None = "hash") -> ChargerCredential:
    return ChargerCredential(charge_point_id="CP", approved=True, password_hash=password_hash)


@pytest.mark.parametrize(
    ("mode", "unknown", "credential", "password_ok", "expected"),
    [
        ("none", "reject", None, False, Admission.ADMIT),
        ("forward", "accept", None, False, Admission.ADMIT),
        ("forward", "reject", None, False, Refusal(403, "this charger is not approved")),
        ("local", "pending", None, False, Admission.PENDING),
        ("local", "pending", ChargerCredential(charge_point_id="CP"), False, Admission.PENDING),
        ("local", "accept", _known(), False, Refusal(401, "wrong or missing credentials")),
        ("local", "accept", _known(), True, Admission.ADMIT),
        ("both", "reject", _known(), False, Refusal(401, "wrong or missing credentials")),
        ("forward", "reject", _known(), False, Admission.ADMIT),  # the CSMS checks
        ("local", "reject", _known(password_hash=None), False, Admission.ADMIT),
        ("local", "accept", ChargerCredential(charge_point_id="CP"), False, REVOKED),
        ("forward", "accept", ChargerCredential(charge_point_id="CP"), True, REVOKED),
    ],
)
def test_admission(
    mode: AuthMode,
    unknown: str,
    credential: ChargerCredential | None,
    password_ok: bool,
    expected: Admission | Refusal,
) -> None:
    assert admit(mode, unknown, credential, password_ok=password_ok) == expected


def test_auto_mode_and_what_reaches_the_csms() -> None:
    assert auth_mode("auto", has_upstream=True) == "forward"
    assert auth_mode("auto", has_upstream=False) == "local"
    assert not forwards_authorization("local")
    assert forwards_authorization("both")


def test_a_pending_charger_is_answered_pending_or_refused() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    boot = pending_answer(parse_frame('[2,"1","BootNotification",{}]'), now)
    assert boot is not None
    assert json.loads(boot) == [
        3,
        "1",
        {"currentTime": "2026-01-01T00:00:00Z", "interval": 30, "status": "Pending"},
    ]
    other = pending_answer(parse_frame('[2,"2","Authorize",{"idTag":"x"}]'), now)
    assert other is not None
    assert json.loads(other)[:3] == [4, "2", "SecurityError"]
    assert pending_answer(parse_frame('[3,"3",{}]'), now) is None
    assert pending_answer(parse_frame('[6,"4","NotifyPeriodicEventStream",{}]'), now) is None
