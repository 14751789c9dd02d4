"""The two test peers talk to each other directly: the simulated charger and the test CSMS.

If these pass, a proxy test that fails points at the proxy, not at its peers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from ocpp.exceptions import NotSupportedError as OcppNotSupported
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.exceptions import InvalidStatus
from websockets.frames import CloseCode

from oye_cli.simulator import (
    RecordedFrame,
    SimulatedCharger,
    Version,
    basic_authorization,
    charger_url,
    is_call,
    is_reply_to,
)
from oye_cli.simulator.v16 import ChargerV16
from oye_shared.frames import MessageType
from tests.peers.csms import ChargerHandle, CsmsServer

pytestmark = pytest.mark.integration

CP = "CP 1|A"  # a space and a '|' travel percent-encoded in the URL
WAIT = 5.0
CALLERROR = MessageType.CALLERROR
EXACTLY_21_4 = re.compile(r'"limit":21\.4[,}]')  # not 21.39999 nor 21.40


@pytest.fixture
async def csms() -> AsyncIterator[CsmsServer]:
    async with CsmsServer() as server:
        yield server


def charger(csms: CsmsServer, version: Version = "1.6", **options: Any) -> SimulatedCharger:
    return SimulatedCharger(charger_url(csms.url, CP), CP, version=version, **options)


async def reply_to_last(handle: ChargerHandle, action: str) -> RecordedFrame:
    """The charger's raw reply to the last ``action`` CALL the CSMS sent."""
    sent = handle.frames.find(is_call(action), direction="sent")[-1]
    assert sent.message_id is not None
    async with asyncio.timeout(WAIT):
        return await handle.frames.wait_for(is_reply_to(sent.message_id))


async def connected(csms: CsmsServer, cp: str = CP) -> ChargerHandle:
    async with asyncio.timeout(WAIT):
        return await csms.wait_for_charger(cp)


def tx_default_16(limit: float, *, profile_id: int = 7) -> dict[str, Any]:
    return {
        "charging_profile_id": profile_id,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": {
            "start_schedule": "2020-01-01T00:00:00Z",
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": limit}],
        },
    }


def profile_201(profile_id: int, purpose: str, limit: float) -> dict[str, Any]:
    return {
        "id": profile_id,
        "stack_level": 0,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": 1,
                "start_schedule": "2020-01-01T00:00:00Z",
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            }
        ],
    }


async def test_a_16_charger_boots_beats_and_reports_status_and_meter_values(
    csms: CsmsServer,
) -> None:
    """A 1.6 charger's first messages reach the CSMS, in order, and get answers."""
    async with charger(csms) as cp:
        boot = await cp.boot()
        assert (boot.status, boot.interval) == ("Accepted", 300)
        assert (await cp.heartbeat()).current_time.endswith("Z")
        await cp.status(1, "Available")
        await cp.meter_values(1, energy_wh=1234)
        handle = await connected(csms)
        assert handle.subprotocol == cp.subprotocol == "ocpp1.6"
        assert handle.charge_point_id == CP
        assert handle.path == "/ocpp/CP%201%7CA"
        actions = [f.action for f in cp.frames.find(is_call(), direction="sent")]
        assert actions == ["BootNotification", "Heartbeat", "StatusNotification", "MeterValues"]
        assert handle.frames.received == cp.sent
        assert handle.calls("MeterValues")[0]["meterValue"][0]["sampledValue"][0]["value"] == "1234"
        assert isinstance(cp.peer, ChargerV16)
        assert cp.peer.config["HeartbeatInterval"].value == "300"


async def test_a_201_charger_boots_beats_and_reports_status_and_meter_values(
    csms: CsmsServer,
) -> None:
    """A 2.0.1 charger's first messages reach the CSMS, in order, and get answers."""
    async with charger(csms, "2.0.1") as cp:
        assert (await cp.boot()).status == "Accepted"
        await cp.heartbeat()
        await cp.status(1, "Occupied")
        await cp.meter_values(1, energy_wh=42, power_w=7400.5)
        handle = await connected(csms)
        assert handle.subprotocol == "ocpp2.0.1"
        assert handle.calls("StatusNotification") == [
            {
                "timestamp": handle.calls("StatusNotification")[0]["timestamp"],
                "connectorStatus": "Occupied",
                "evseId": 1,
                "connectorId": 1,
            }
        ]
        sampled = handle.calls("MeterValues")[0]["meterValue"][0]["sampledValue"]
        assert [s["value"] for s in sampled] == [42, 7400.5]
        assert handle.frames.received == cp.sent


async def test_the_csms_reads_and_changes_16_configuration(csms: CsmsServer) -> None:
    """GetConfiguration lists known keys and unknownKey; ChangeConfiguration stores or refuses."""
    async with charger(csms):
        handle = await connected(csms)
        keys = ["HeartbeatInterval", "ChargeProfileMaxStackLevel", "SmartChargingEnabled"]
        result = await handle.call(call16.GetConfiguration(key=keys))
        assert result.configuration_key == [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "8"},
        ]
        assert result.unknown_key == ["SmartChargingEnabled"]
        change = call16.ChangeConfiguration
        assert (await handle.call(change("HeartbeatInterval", "60"))).status == "Accepted"
        assert (await handle.call(change("ChargeProfileMaxStackLevel", "3"))).status == "Rejected"
        assert (await handle.call(change("NoSuchKey", "1"))).status == "NotSupported"
        everything = await handle.call(call16.GetConfiguration())
        values = {k["key"]: k.get("value") for k in everything.configuration_key}
        assert values["HeartbeatInterval"] == "60"
        assert "ScheduledMode" in values


async def test_a_16_composite_schedule_reports_the_profile_limit_exactly(
    csms: CsmsServer,
) -> None:
    """SetChargingProfile 21.4 A then GetCompositeSchedule gives back exactly 21.4."""
    async with charger(csms):
        handle = await connected(csms)
        empty = await handle.call(call16.GetCompositeSchedule(1, 3600, "A"))
        assert empty.status == "Accepted"  # no profile: the charger's own 32 A
        assert empty.charging_schedule["charging_schedule_period"][0]["limit"] == 32
        set_profile = call16.SetChargingProfile(1, tx_default_16(21.4))
        assert (await handle.call(set_profile)).status == "Accepted"
        result = await handle.call(call16.GetCompositeSchedule(1, 3600, "A"))
        assert result.status == "Accepted"
        periods = result.charging_schedule["charging_schedule_period"]
        assert periods == [{"start_period": 0, "limit": Decimal("21.4"), "number_phases": 3}]
        assert EXACTLY_21_4.search((await reply_to_last(handle, "GetCompositeSchedule")).text)


async def test_the_16_composite_is_the_minimum_of_station_max_and_tx_default(
    csms: CsmsServer,
) -> None:
    """A ChargePointMaxProfile below the TxDefault limit caps the composite schedule."""
    async with charger(csms):
        handle = await connected(csms)
        await handle.call(call16.SetChargingProfile(1, tx_default_16(21.4)))
        station_max = tx_default_16(16.0, profile_id=1) | {
            "charging_profile_purpose": "ChargePointMaxProfile"
        }
        assert (await handle.call(call16.SetChargingProfile(0, station_max))).status == "Accepted"
        result = await handle.call(call16.GetCompositeSchedule(1, 600))
        assert result.charging_schedule["charging_schedule_period"][0]["limit"] == 16
        cleared = await handle.call(call16.ClearChargingProfile(id=1))
        assert cleared.status == "Accepted"
        again = await handle.call(call16.ClearChargingProfile(id=1))
        assert again.status == "Unknown"


async def test_a_16_tx_profile_without_a_transaction_is_rejected(csms: CsmsServer) -> None:
    """TxProfile needs a running transaction on its connector (1.6 §5.16)."""
    async with charger(csms):
        handle = await connected(csms)
        tx_profile = tx_default_16(10.0) | {"charging_profile_purpose": "TxProfile"}
        result = await handle.call(call16.SetChargingProfile(1, tx_profile))
        assert result.status == "Rejected"


async def test_a_16_reset_is_accepted_and_remembered(csms: CsmsServer) -> None:
    """Reset Hard is Accepted and recorded by the charger."""
    async with charger(csms) as cp:
        handle = await connected(csms)
        assert (await handle.call(call16.Reset("Hard"))).status == "Accepted"
        assert cp.state.resets == ["Hard"]


async def test_a_16_remote_start_and_stop_run_a_transaction(csms: CsmsServer) -> None:
    """RemoteStart leads to StartTransaction (CSMS id), RemoteStop to StopTransaction."""
    async with charger(csms) as cp:
        handle = await connected(csms)
        start = await handle.call(call16.RemoteStartTransaction("TAG-1", connector_id=1))
        assert start.status == "Accepted"
        async with asyncio.timeout(WAIT):
            await handle.frames.wait_for(is_call("StartTransaction"))
            await cp.settle()
        transaction = cp.state.connectors[1].transaction
        assert transaction is not None
        assert transaction.id == "1"
        stop = await handle.call(call16.RemoteStopTransaction(1))
        assert stop.status == "Accepted"
        async with asyncio.timeout(WAIT):
            stopped = await handle.frames.wait_for(is_call("StopTransaction"))
        assert stopped.payload["transactionId"] == 1
        assert stopped.payload["reason"] == "Remote"


async def test_an_unknown_action_gets_not_implemented_and_an_unhandled_one_not_supported(
    csms: CsmsServer,
) -> None:
    """The charger answers with the spec's error codes, not ocpp 2.1.0's swapped ones."""
    async with charger(csms) as cp:
        handle = await connected(csms)
        await handle.send_raw('[2,"raw-1","FooBar",{}]')
        await handle.send_raw('[2,"raw-2","GetDiagnostics",{"location":"ftp://x/"}]')
        async with asyncio.timeout(WAIT):
            first = await cp.frames.wait_for(is_reply_to("raw-1"), direction="sent")
            second = await cp.frames.wait_for(is_reply_to("raw-2"), direction="sent")
        codes = [(f.message_type, f.frame.error_code if f.frame else None) for f in (first, second)]
        assert codes == [(CALLERROR, "NotImplemented"), (CALLERROR, "NotSupported")]


async def test_a_csms_call_the_charger_cannot_handle_raises_the_ocpp_error(
    csms: CsmsServer,
) -> None:
    """A CALLERROR comes back to the CSMS caller as the matching OCPPError."""
    async with charger(csms):
        handle = await connected(csms)
        with pytest.raises(OcppNotSupported):
            await handle.call(call16.GetDiagnostics("ftp://example.org/"))


async def test_a_201_composite_schedule_reports_the_profile_limit_exactly(
    csms: CsmsServer,
) -> None:
    """2.0.1 SetChargingProfile 21.4 A then GetCompositeSchedule gives back exactly 21.4."""
    async with charger(csms, "2.0.1"):
        handle = await connected(csms)
        profile = profile_201(5, "TxDefaultProfile", 21.4)
        result = await handle.call(call201.SetChargingProfile(1, profile))
        assert result.status == "Accepted"
        composite = await handle.call(call201.GetCompositeSchedule(3600, 1, "A"))
        assert composite.status == "Accepted"
        period = composite.schedule["charging_schedule_period"]
        assert period == [{"start_period": 0, "limit": 21.4, "number_phases": 3}]
        assert EXACTLY_21_4.search((await reply_to_last(handle, "GetCompositeSchedule")).text)


def last_report(frame: RecordedFrame) -> bool:
    return frame.action == "ReportChargingProfiles" and frame.payload.get("tbc") is False


async def test_201_get_charging_profiles_is_followed_by_reports_with_its_request_id(
    csms: CsmsServer,
) -> None:
    """GetChargingProfiles: Accepted, then ReportChargingProfiles per purpose, tbc but the last."""
    async with charger(csms, "2.0.1"):
        handle = await connected(csms)
        await handle.call(
            call201.SetChargingProfile(0, profile_201(1, "ChargingStationMaxProfile", 32.0))
        )
        await handle.call(call201.SetChargingProfile(1, profile_201(2, "TxDefaultProfile", 16.5)))
        none = await handle.call(
            call201.GetChargingProfiles(77, {"charging_profile_purpose": "TxProfile"})
        )
        assert none.status == "NoProfiles"
        result = await handle.call(call201.GetChargingProfiles(900001, {}))
        assert result.status == "Accepted"
        async with asyncio.timeout(WAIT):
            await handle.frames.wait_for(last_report)
        reports = handle.calls("ReportChargingProfiles")
        assert [r["requestId"] for r in reports] == [900001, 900001]
        assert [r.get("tbc") for r in reports] == [True, False]
        assert [r["chargingProfile"][0]["id"] for r in reports] == [1, 2]
        assert reports[1]["chargingProfile"][0]["chargingSchedule"][0][
            "chargingSchedulePeriod"
        ] == [{"startPeriod": 0, "limit": 16.5}]


async def test_basic_auth_with_the_right_password_is_accepted_and_seen_by_the_csms() -> None:
    """With passwords set, the charger's Basic auth header is checked and recorded."""
    server = CsmsServer(passwords={CP: "s3cret-pass-0123"})
    async with server as csms, charger(csms, password="s3cret-pass-0123"):
        handle = await connected(csms)
        expected = basic_authorization(CP, "s3cret-pass-0123")
        assert handle.headers["Authorization"] == expected


@pytest.mark.parametrize("password", [None, "wrong-password-01"])
async def test_basic_auth_missing_or_wrong_is_refused_with_401(password: str | None) -> None:
    """A missing or wrong password fails the handshake with HTTP 401."""
    async with CsmsServer(passwords={CP: "s3cret-pass-0123"}) as csms:
        with pytest.raises(InvalidStatus) as refused:
            async with charger(csms, password=password):
                pass
        assert refused.value.response.status_code == 401
        assert [h.status for h in csms.handshakes] == [401]


async def test_a_refused_charge_point_gets_the_configured_http_status() -> None:
    """refuse={id: 404} fails that charger's handshake with 404."""
    async with CsmsServer(refuse={CP: 404}) as csms:
        with pytest.raises(InvalidStatus) as refused:
            async with charger(csms):
                pass
        assert refused.value.response.status_code == 404


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1"), (["ocpp1.6", "ocpp2.0.1"], "ocpp1.6")],
)
async def test_the_csms_picks_the_first_subprotocol_in_the_charger_s_order(
    csms: CsmsServer, offered: list[str], chosen: str
) -> None:
    """Subprotocol selection follows the client's preference order, not the server's."""
    async with charger(csms, subprotocols=offered) as cp:
        assert cp.subprotocol == chosen
        assert (await connected(csms)).subprotocol == chosen


async def test_a_charger_offering_only_ocpp21_is_served_by_the_21_csms_peer(
    csms: CsmsServer,
) -> None:
    """The CSMS builds its peer from the negotiated subprotocol, 2.1 included."""
    async with charger(csms, "2.0.1", subprotocols=["ocpp2.1"]) as cp:
        assert cp.subprotocol == "ocpp2.1"
        assert (await cp.boot()).status == "Accepted"
        handle = await connected(csms)
        assert type(handle.peer).__name__ == "Csms21"


async def test_no_common_subprotocol_completes_the_handshake_and_then_closes() -> None:
    """No match: handshake without a subprotocol, then the CSMS closes (1002)."""
    async with CsmsServer(versions=("ocpp2.0.1",)) as csms, charger(csms) as cp:
        assert cp.subprotocol is None
        async with asyncio.timeout(WAIT):
            assert await cp.wait_closed() == CloseCode.PROTOCOL_ERROR
        assert csms.chargers == {}


async def test_the_csms_can_stop_and_start_again_on_the_same_port(csms: CsmsServer) -> None:
    """stop() closes chargers with 1001; start() listens on the same port again."""
    port = csms.port
    async with charger(csms) as cp:
        first = await connected(csms)
        await csms.stop()
        async with asyncio.timeout(WAIT):
            assert await cp.wait_closed() == CloseCode.GOING_AWAY
    with pytest.raises(ConnectionRefusedError):
        async with charger(csms):
            pass
    await csms.start()
    assert csms.port == port
    async with charger(csms) as cp:
        async with asyncio.timeout(WAIT):
            second = await csms.wait_for_charger(CP, newer_than=first)
        assert second is not first
        assert (await cp.boot()).status == "Accepted"


async def test_dropping_all_connections_cuts_the_charger_without_a_close_frame(
    csms: CsmsServer,
) -> None:
    """drop_all() aborts TCP: the charger sees an abnormal closure (1006)."""
    async with charger(csms) as cp:
        handle = await connected(csms)
        csms.drop_all()
        async with asyncio.timeout(WAIT):
            assert await cp.wait_closed() == CloseCode.ABNORMAL_CLOSURE
            await handle.wait_closed()


async def test_a_201_remote_start_and_stop_run_a_transaction(csms: CsmsServer) -> None:
    """RequestStartTransaction leads to TransactionEvent Started with the remoteStartId."""
    async with charger(csms, "2.0.1") as cp:
        handle = await connected(csms)
        token = {"id_token": "TAG-2", "type": "Central"}
        result = await handle.call(call201.RequestStartTransaction(token, 4711, evse_id=1))
        assert result.status == "Accepted"
        async with asyncio.timeout(WAIT):
            started = await handle.frames.wait_for(is_call("TransactionEvent"))
            await cp.settle()
        info = started.payload["transactionInfo"]
        assert (started.payload["eventType"], started.payload["triggerReason"]) == (
            "Started",
            "RemoteStart",
        )
        assert info["remoteStartId"] == 4711
        busy = await handle.call(call201.RequestStartTransaction(token, 4712, evse_id=1))
        assert (busy.status, busy.transaction_id) == ("Rejected", info["transactionId"])
        stop = await handle.call(call201.RequestStopTransaction(info["transactionId"]))
        assert stop.status == "Accepted"
        async with asyncio.timeout(WAIT):
            ended = await handle.frames.wait_for(
                lambda f: f.action == "TransactionEvent" and f.payload["eventType"] == "Ended"
            )
        assert ended.payload["transactionInfo"]["stoppedReason"] == "Remote"
        assert ended.payload["seqNo"] == 1


async def test_201_variables_are_read_written_and_reported(csms: CsmsServer) -> None:
    """GetVariables/SetVariables follow the device model; GetBaseReport streams NotifyReport."""
    async with charger(csms, "2.0.1"):
        handle = await connected(csms)
        ping = {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "WebSocketPingInterval"},
        }
        unknown = {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}}
        written = await handle.call(call201.SetVariables([ping | {"attribute_value": "60"}]))
        assert written.set_variable_result[0]["attribute_status"] == "Accepted"
        read = await handle.call(call201.GetVariables([ping, unknown]))
        statuses = [
            (r["attribute_status"], r.get("attribute_value")) for r in read.get_variable_result
        ]
        assert statuses == [("Accepted", "60"), ("UnknownComponent", None)]
        report = await handle.call(call201.GetBaseReport(31, "FullInventory"))
        assert report.status == "Accepted"
        async with asyncio.timeout(WAIT):
            await handle.frames.wait_for(
                lambda f: f.action == "NotifyReport" and f.payload.get("tbc") is False
            )
        parts = handle.calls("NotifyReport")
        assert [p["seqNo"] for p in parts] == list(range(len(parts)))
        assert {p["requestId"] for p in parts} == {31}
        assert len(parts) > 1
