"""The user's Smart Charging Guide, run with curl as written, through the whole stack.

Every curl reaches a real (simulated) charger through the relay, the HTTP body is the
charger's own answer, and the CSMS behind the relay never sees any of it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from oye_api.ocpp_text import result_payload_text
from oye_cli.simulator import SimulatedCharger
from oye_cli.simulator.frame_log import is_call, is_reply_to
from oye_shared.settings import Settings
from tests.peers.csms import CsmsServer
from tests.support.stack import ADMIN_PASSWORD, Stack, stack_running

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).parents[1] / "data" / "SMART_CHARGING.md"
USERS_GUIDE = Path(__file__).parents[3] / "shared" / "seed" / "SMART_CHARGING.md"


def guide_curls() -> list[str]:
    """Every curl command of the guide, exactly as bash would read it, comments dropped."""
    commands: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S):
        open_command = False
        for line in block.splitlines():
            if line.strip().startswith("curl"):
                commands.append([line.strip()])
                open_command = True
            elif line.strip().startswith("#") or not line.strip():
                open_command = False
            elif open_command:
                commands[-1].append(line)
    return ["\n".join(lines) for lines in commands]


def action_of(command: str) -> str:
    body = json.loads(re.search(r"-d '(.*)'", command, re.S).group(1))  # type: ignore[union-attr]
    action: str = body["action"]
    return action


def as_run_here(command: str, stack: Stack, charge_point_id: str) -> str:
    """The guide's command with this test's charger, password and port filled in."""
    return (
        command.replace("{chargePointId}", quote(charge_point_id, safe=""))
        .replace("YOUR_PASSWORD", ADMIN_PASSWORD)
        .replace("http://localhost:8080", stack.api_url)
        # The prerequisites abbreviate auth and headers as "...".
        .replace(" ... -d", f' -u admin:{ADMIN_PASSWORD} -H "Content-Type: application/json" -d')
    )


@dataclass
class CurlResult:
    status: int
    body: str


async def curl(command: str) -> CurlResult:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command + " -s -w '\\n%{http_code}'",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    body, _, status = out.decode().rpartition("\n")
    return CurlResult(int(status), body)


def last_answer_text(charger: SimulatedCharger, action: str) -> str:
    """The payload text of the charger's answer to the last CALL of ``action`` it got."""
    call = charger.frames.find(is_call(action), direction="received")[-1]
    assert call.message_id is not None
    (answer,) = charger.frames.find(is_reply_to(call.message_id), direction="sent")
    return result_payload_text(answer.text)


@pytest.fixture
async def site(settings: Settings) -> AsyncIterator[tuple[Stack, CsmsServer]]:
    async with (
        CsmsServer(first_transaction_id=12345) as csms,
        stack_running(settings.model_copy(update={"upstream_url": csms.url})) as stack,
    ):
        yield stack, csms


def test_the_guide_in_the_tests_is_the_users_guide() -> None:
    """The copy the tests run is the user's own document, unchanged."""
    if USERS_GUIDE.exists():
        assert GUIDE.read_text() == USERS_GUIDE.read_text()
    assert len(guide_curls()) == 8


async def test_every_curl_of_the_guide_returns_what_the_16_charger_answered(
    site: tuple[Stack, CsmsServer],
) -> None:
    """Scenarios A, B, C, clearing, GetCompositeSchedule, Get/ChangeConfiguration: 200 with
    the charger's own answer; the CSMS sees none of these calls or answers."""
    stack, csms = site
    cp = "Garage Box.1"
    async with SimulatedCharger(stack.relay.url(cp), cp, version="1.6") as charger:
        await charger.boot()
        started = await charger.start_transaction(connector=1, id_tag="OWNER", meter_start=0)
        assert started.transaction_id == 12345  # Scenario C names this transaction
        handle = await csms.wait_for_charger(cp)
        for command in guide_curls():
            action = action_of(command)
            if action == "GetChargingProfiles":
                continue  # not in OCPP 1.6: its own test below
            result = await curl(as_run_here(command, stack, cp))
            assert result.status == 200, (action, result.body)
            assert result.body == last_answer_text(charger, action)
        composite = json.loads(last_answer_text(charger, "GetCompositeSchedule"))
        assert composite["status"] == "Accepted"
        assert (
            min(p["limit"] for p in composite["chargingSchedule"]["chargingSchedulePeriod"]) <= 32
        )
        await charger.heartbeat()  # the CSMS link still works, and is all the CSMS saw
    seen = [f.message_id or "" for f in handle.frames.frames]
    assert not [message_id for message_id in seen if message_id.startswith("oye-")]
    assert {f.action for f in handle.frames.frames if f.action} <= {
        "BootNotification",
        "StartTransaction",
        "Heartbeat",
    }


async def test_the_guides_get_charging_profiles_is_refused_for_16_then_sent_unvalidated(
    site: tuple[Stack, CsmsServer],
) -> None:
    """As written: 422 naming OCPP 1.6 and GetCompositeSchedule. With "validate": false the
    charger's CALLERROR comes back as 502."""
    stack, _ = site
    (command,) = [c for c in guide_curls() if action_of(c) == "GetChargingProfiles"]
    async with SimulatedCharger(stack.relay.url("CP16"), "CP16", version="1.6") as charger:
        await charger.boot()
        refused = await curl(as_run_here(command, stack, "CP16"))
        assert refused.status == 422
        detail = json.loads(refused.body)["detail"]
        assert "1.6" in detail
        assert "GetCompositeSchedule" in detail
        assert not charger.frames.find(is_call("GetChargingProfiles"), direction="received")

        unvalidated = command.replace('"action":', '"validate": false, "action":')
        sent = await curl(as_run_here(unvalidated, stack, "CP16"))
        assert sent.status == 502
        error = json.loads(sent.body)
        assert error["errorCode"] in ("NotImplemented", "NotSupported")
        assert error["messageId"].startswith("oye-")


async def test_get_charging_profiles_with_collect_returns_the_201_chargers_profiles(
    site: tuple[Stack, CsmsServer],
) -> None:
    """On 2.0.1 the guide's request works with requestId and criteria; collect gathers the
    ReportChargingProfiles, which the relay answers and the CSMS never sees."""
    stack, csms = site
    cp = "CP201"
    async with SimulatedCharger(stack.relay.url(cp), cp, version="2.0.1") as charger:
        await charger.boot()
        handle = await csms.wait_for_charger(cp)
        async with stack.client() as api:
            for profile_id, purpose, evse, limit in (
                (1, "ChargingStationMaxProfile", 0, 32.0),
                (2, "TxDefaultProfile", 1, 16.0),
            ):
                payload = {
                    "evseId": evse,
                    "chargingProfile": {
                        "id": profile_id,
                        "stackLevel": 0,
                        "chargingProfilePurpose": purpose,
                        "chargingProfileKind": "Absolute",
                        "chargingSchedule": [
                            {
                                "id": profile_id,
                                "startSchedule": "2025-06-01T00:00:00Z",
                                "chargingRateUnit": "A",
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
                            }
                        ],
                    },
                }
                set_reply = await api.post(
                    f"/api/inject/{cp}", json={"action": "SetChargingProfile", "payload": payload}
                )
                assert set_reply.json() == {"status": "Accepted"}
            collected = await api.post(
                f"/api/inject/{cp}",
                json={
                    "action": "GetChargingProfiles",
                    "payload": {"requestId": 900001, "chargingProfile": {}},
                    "collect": True,
                },
            )
        assert collected.status_code == 200, collected.text
        body = collected.json()
        assert body["result"] == {"status": "Accepted"}
        reported = [p["id"] for report in body["reports"] for p in report["chargingProfile"]]
        assert sorted(reported) == [1, 2]
        assert body["reports"][-1]["tbc"] is False
        await charger.heartbeat()
    assert not handle.calls("ReportChargingProfiles")
    assert not handle.calls("SetChargingProfile")
