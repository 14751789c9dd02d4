"""bench.memory: allocations held per charger, sorted by the relay's code that made them."""

from __future__ import annotations

import pytest

from bench.memory import Held, breakdown, made_at, made_by, where

SITE = "/venv/lib/python3.11/site-packages"
SESSION = ("/repo/services/relay/oye_relay/session.py", 270)
SERVER = ("/repo/services/relay/oye_relay/server.py", 401)
WEBSOCKETS = (f"{SITE}/websockets/asyncio/connection.py", 130)
PYDANTIC = (f"{SITE}/pydantic/main.py", 280)
ASYNCIO = ("/usr/lib/python3.11/asyncio/tasks.py", 384)


def test_where_is_the_innermost_frame_of_our_own_code() -> None:
    assert where([SERVER, SESSION, WEBSOCKETS]) == "session.py:270"
    assert where([SERVER, PYDANTIC]) == "server.py:401"
    assert where([ASYNCIO, WEBSOCKETS]) == "elsewhere"


@pytest.mark.parametrize(
    ("frames", "maker"),
    [
        ([SESSION, WEBSOCKETS], "websockets"),
        ([SERVER, PYDANTIC], "pydantic"),
        ([SESSION, ASYNCIO], "stdlib"),
        ([SERVER, SESSION], "ours"),
        ([], "C"),
    ],
)
def test_the_maker_is_the_package_of_the_innermost_frame(
    frames: list[tuple[str, int]], maker: str
) -> None:
    assert made_by(frames) == maker


def test_the_breakdown_is_per_charger_and_largest_first() -> None:
    held = [
        Held(size=2_000, count=20, frames=[SESSION, WEBSOCKETS]),
        Held(size=6_000, count=30, frames=[SERVER, PYDANTIC]),
        Held(size=1_000, count=10, frames=[SERVER, SESSION, WEBSOCKETS]),
        Held(size=500, count=5, frames=[ASYNCIO]),
    ]
    result = breakdown(held, chargers=10)
    assert result["maker"] == [
        ("pydantic", 600.0, 3.0),
        ("websockets", 300.0, 3.0),
        ("stdlib", 50.0, 0.5),
    ]
    assert result["line"] == [
        ("server.py:401", 600.0, 3.0),
        ("session.py:270", 300.0, 3.0),
        ("elsewhere", 50.0, 0.5),
    ]
    assert result["module"][0] == ("server.py (pydantic)", 600.0, 3.0)


def test_made_at_is_the_innermost_frame_wherever_it_is() -> None:
    assert made_at([SESSION, WEBSOCKETS]) == "websockets/asyncio/connection.py:130"
    assert made_at([SERVER, ASYNCIO]) == "stdlib/tasks.py:384"
    assert made_at([SERVER, SESSION]) == "session.py:270"
    assert made_at([]) == "C"
    held = [Held(size=1_000, count=10, frames=[SERVER, PYDANTIC])]
    assert breakdown(held, chargers=10)["made at"] == [("pydantic/main.py:280", 100.0, 1.0)]
