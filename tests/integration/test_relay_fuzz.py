"""Hostile frames over a real WebSocket: whatever one charger sends, the relay keeps
serving the others.

A standalone relay (no CSMS: it answers chargers itself, so every CALL reaches its
offline answerer, its schema checks and its transaction bookkeeping) takes a witness
charger and a fuzzing one. Hypothesis generates bursts of frames for the fuzzing one:
arbitrary text and bytes, JSON of any shape, and OCPP-J-like arrays with real action
names and arbitrary payloads. After each burst the witness makes a round trip, which must
be answered within :data:`ROUND_TRIP_LIMIT`; the relay must never close a connection
with 1011 (an internal error), and must still be running at the end.

Hypothesis draws every burst before the relay starts (derandomized, no example database):
drawing while the relay runs would have it see the relay's own use of ``random`` as its
strategies', and the relay is stateful, so shrinking would not replay a failure anyway. A
failure names the burst after which the witness went unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from oye_shared.settings import Settings
from tests.support.relay import RunningRelay, relay_running

pytestmark = pytest.mark.integration

EXAMPLES = 150
ROUND_TRIP_LIMIT = 5.0
INTERNAL_ERROR = 1011

ACTIONS = {
    "ocpp1.6": [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "StopTransaction",
        "MeterValues",
        "DataTransfer",
        "FirmwareStatusNotification",
    ],
    "ocpp2.0.1": [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
        "MeterValues",
        "NotifyReport",
        "DataTransfer",
    ],
}

#: Payload fields the relay reads (ids, transactions, tags, meter values) and others.
FIELDS = (
    *("idTag", "connectorId", "transactionId", "meterStart", "meterStop", "timestamp"),
    *("status", "errorCode", "eventType", "seqNo", "evse", "idToken", "reason"),
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def ocpp_like(subprotocol: str) -> st.SearchStrategy[str]:
    """Arrays shaped like OCPP-J frames: a (maybe wrong) type, an id, an action, a payload."""
    message_type = st.sampled_from([2, 3, 4, 5, 0, -1, "2", 2.0, None])
    message_id = st.text(max_size=40) | st.integers() | st.none()
    action = st.sampled_from(ACTIONS[subprotocol]) | st.text(max_size=20)
    payload = st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=10),
        JSON,
        max_size=6,
    )
    call = st.tuples(message_type, message_id, action, payload | JSON)
    reply = st.tuples(message_type, message_id, payload | JSON)
    error = st.tuples(message_type, message_id, st.text(max_size=20), st.text(max_size=20), JSON)
    extra = st.lists(JSON, max_size=7)
    return st.one_of(call, reply, error, extra).map(lambda parts: json.dumps(list(parts)))


def frames(subprotocol: str) -> st.SearchStrategy[list[str | bytes]]:
    one: st.SearchStrategy[str | bytes] = st.one_of(
        ocpp_like(subprotocol),
        JSON.map(json.dumps),
        st.text(max_size=300),
        st.binary(max_size=300),
    )
    return st.lists(one, min_size=1, max_size=6)


@contextlib.asynccontextmanager
async def drained(connection: ClientConnection, closes: list[int]) -> AsyncIterator[None]:
    """Read and drop whatever the relay sends; its close code goes into ``closes``."""

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in connection:
                pass

    task = asyncio.create_task(drain())
    try:
        yield
    finally:
        await connection.close()
        await task
        if connection.close_code is not None:
            closes.append(connection.close_code)


class Fuzzer:
    """The fuzzing charger: one connection at a time, reopened if the relay closes it."""

    def __init__(self, relay: RunningRelay, subprotocol: str) -> None:
        self._url = relay.url("CP-FUZZ")
        self._subprotocol = subprotocol
        self._stack = contextlib.AsyncExitStack()
        self._connection: ClientConnection | None = None
        self.closes: list[int] = []
        self.reconnects = 0

    async def send(self, burst: list[str | bytes]) -> None:
        for frame in burst:
            if self._connection is None:
                await self._open()
            assert self._connection is not None
            try:
                await self._connection.send(frame)
            except ConnectionClosed:
                self._connection = None  # the next frame (or burst) goes on a new one

    async def _open(self) -> None:
        connection = await self._stack.enter_async_context(
            connect(self._url, subprotocols=[Subprotocol(self._subprotocol)], max_size=None)
        )
        await self._stack.enter_async_context(drained(connection, self.closes))
        self._connection = connection
        self.reconnects += 1

    async def close(self) -> None:
        await self._stack.aclose()


async def round_trip(witness: ClientConnection, number: int) -> float:
    """A Heartbeat from the witness; seconds until its CALLRESULT."""
    message_id = f"witness-{number}"
    began = time.monotonic()
    await witness.send(json.dumps([2, message_id, "Heartbeat", {}]))
    meanwhile: list[Any] = []
    try:
        async with asyncio.timeout(ROUND_TRIP_LIMIT):
            while True:
                answer: Any = json.loads(await witness.recv())
                if answer[:2] == [3, message_id]:
                    return time.monotonic() - began
                meanwhile.append(answer)
    except TimeoutError:
        raise AssertionError(
            f"the witness's round trip {number} got no answer in {ROUND_TRIP_LIMIT} s; "
            f"it received meanwhile: {meanwhile!r}"
        ) from None


def bursts(subprotocol: str) -> list[list[str | bytes]]:
    """:data:`EXAMPLES` bursts, drawn by Hypothesis before anything runs (deterministic)."""
    drawn: list[list[str | bytes]] = []

    @hypothesis_settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(burst=frames(subprotocol))
    def collect(burst: list[str | bytes]) -> None:
        drawn.append(burst)

    collect()
    return drawn


@pytest.mark.timeout(180)
@pytest.mark.parametrize("subprotocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_hostile_frames_from_one_charger_never_stop_the_relay_serving_another(
    settings: Settings, subprotocol: str
) -> None:
    """After every burst of arbitrary frames from one charger, another charger's round trip
    is answered in time; no connection is closed with 1011; the relay still runs."""
    generated = bursts(subprotocol)
    # Neither admission nor the CALL rate limit is the point here (they have tests of their
    # own); at the default rate the witness's own round trips would soon be refused.
    lab = settings.model_copy(update={"charger_auth": "none", "charger_call_rate": 10_000.0})
    latencies: list[float] = []
    async with (
        relay_running(lab) as relay,
        connect(relay.url("CP-WITNESS"), subprotocols=[Subprotocol(subprotocol)]) as witness,
    ):
        fuzzer = Fuzzer(relay, subprotocol)
        try:
            latencies.append(await round_trip(witness, 0))
            for number, burst in enumerate(generated, start=1):
                await fuzzer.send(burst)
                try:
                    latencies.append(await round_trip(witness, number))
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\nafter burst {number}: {burst!r}") from None
        finally:
            await fuzzer.close()
        assert not relay.task.done()
        assert witness.close_code is None
    assert INTERNAL_ERROR not in fuzzer.closes, fuzzer.closes
    assert len(generated) > EXAMPLES // 2
    assert max(latencies) < ROUND_TRIP_LIMIT
