"""The page's pure modules (pairing, JSON locations, the plot's data), run in Chromium
as the page runs them: imported from the API, with nothing but the language."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

JS = "/dashboard/static/js"


async def run(page: Page, module: str, body: str, arg: Any = None) -> Any:
    """``body`` is a function of (module, arg); its value comes back as JSON."""
    return await page.evaluate(
        f"async (arg) => {{ const m = await import('{JS}/{module}'); return ({body})(m, arg); }}",
        arg,
    )


def frame(**fields: Any) -> dict[str, Any]:
    base = {"cp": "CP", "kind": "frame", "messageId": "1", "action": "Heartbeat", "ts": 10.0}
    return base | fields


async def test_a_call_pairs_with_its_answer_in_either_order(dashboard: Page) -> None:
    """Live (call first) or from the log (answer first): one row, with the latency."""
    call = frame(id="c", direction="UPSTREAM", type="CALL", ts=10.0)
    answer = frame(id="a", direction="PROXY_RESPONSE", type="CALLRESULT", ts=10.0425)
    result = await run(
        dashboard,
        "pairing.js",
        """(m, [call, answer]) => {
            const live = new m.Pairing();
            const first = live.add(call);
            const second = live.add(answer);
            const log = new m.Pairing();
            const orphan = log.add(answer);
            const absorbed = log.add(call);
            return {
                live: [first.created, second.answered, second.row === first.row],
                log: [orphan.created, absorbed.absorbed === orphan.row, absorbed.row.answer.id],
                again: live.add(call),
                ms: Math.round(m.latencyMs(call, answer) * 10) / 10,
            };
        }""",
        [call, answer],
    )
    assert result == {
        "live": [True, True, True],
        "log": [True, True, "a"],
        "again": None,
        "ms": 42.5,
    }


async def test_message_ids_pair_per_caller(dashboard: Page) -> None:
    """The charger's call "1" and the CSMS's call "1" are told apart by direction."""
    entries = [
        frame(id="1", direction="UPSTREAM", type="CALL"),
        frame(id="2", direction="DOWNSTREAM", type="CALL", action="Reset"),
        frame(id="3", direction="UPSTREAM", type="CALLRESULT", action="Reset", ts=11.0),
        frame(id="4", direction="DOWNSTREAM", type="CALLRESULT", ts=12.0),
    ]
    pairs = await run(
        dashboard,
        "pairing.js",
        """(m, entries) => {
            const p = new m.Pairing();
            const rows = entries.map((e) => p.add(e).row);
            return [rows[0].answer?.id, rows[1].answer?.id];
        }""",
        entries,
    )
    assert pairs == ["4", "3"]


async def test_json_paths_are_found_at_their_lines(dashboard: Page) -> None:
    """Keys as the relay writes paths, array items, odd keys; a missing path falls back
    to its nearest ancestor."""
    text = '{\n  "a": {\n    "b c": [\n      1,\n      {"d": true}\n    ]\n  }\n}'
    lines = await run(
        dashboard,
        "editor.js",
        """(m, text) => {
            const where = m.jsonLocations(text);
            return ["$", "$.a", '$.a["b c"]', '$.a["b c"][1].d', '$.a["b c"][7].x', "$.zz"]
                .map((p) => m.lineOf(where, p));
        }""",
        text,
    )
    assert lines == [1, 2, 3, 5, 3, 1]


async def test_a_composite_schedule_becomes_steps_in_any_version(dashboard: Page) -> None:
    """1.6 (chargingSchedule) and 2.0.1 (schedule) answers; steps end at the window."""
    v16 = {
        "status": "Accepted",
        "scheduleStart": "2025-06-01T10:00:00Z",
        "chargingSchedule": {
            "duration": 3600,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 1800, "limit": 10.0},
                {"startPeriod": 0, "limit": 16.0},
            ],
        },
    }
    v201 = {
        "status": "Accepted",
        "schedule": {
            "evseId": 0,
            "duration": 7200,
            "scheduleStart": "2025-06-01T10:00:00Z",
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11040}],
        },
    }
    result = await run(
        dashboard,
        "plot.js",
        """(m, [v16, v201]) => [
            m.stepPoints(m.compositeSchedule(v16, 3600)),
            m.stepPoints(m.compositeSchedule(v201, 7200)),
            m.compositeSchedule({status: "Rejected"}, 3600),
            m.niceTicks(17.6),
        ]""",
        [v16, v201],
    )
    assert result == [
        [[0, 16], [1800, 16], [1800, 10], [3600, 10]],
        [[0, 11040], [7200, 11040]],
        None,
        [0, 5, 10, 15, 20],
    ]
