"""Reading the charger's handshake: the id from /ocpp/{id} and the offered subprotocols."""

from __future__ import annotations

import pytest

from oye_relay.admission import (
    Refusal,
    charge_point_id_from_path,
    choose_standalone_subprotocol,
    offered_subprotocols,
)

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
