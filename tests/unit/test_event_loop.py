"""oye_shared.event_loop: uvloop when installed, asyncio's loop when asked or without it."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from oye_shared.event_loop import loop_factory
from oye_shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_auto_and_uvloop_run_on_uvloop() -> None:
    for choice in ("auto", "uvloop"):
        name, factory = loop_factory(choice)
        assert name == "uvloop"
        assert factory is not None
        with asyncio.Runner(loop_factory=factory) as runner:
            assert isinstance(runner.get_loop(), uvloop.Loop)


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert loop_factory("asyncio") == ("asyncio", None)


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert loop_factory("auto") == ("asyncio", None)
    with pytest.raises(SettingsError, match="OYE_EVENT_LOOP: uvloop is not installed"):
        loop_factory("uvloop")


def test_the_setting_takes_only_the_three_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OYE_EVENT_LOOP", "asyncio")
    assert load_settings().event_loop == "asyncio"
    monkeypatch.setenv("OYE_EVENT_LOOP", "trio")
    with pytest.raises(SettingsError, match="OYE_EVENT_LOOP"):
        load_settings()
