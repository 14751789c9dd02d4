"""The README tells the truth: every setting documented, the two commands as CI runs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oye_shared.settings import Settings, env_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def documented_variables() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.M))


def test_every_setting_is_documented_and_nothing_else() -> None:
    """The configuration table lists exactly the variables the settings read."""
    assert documented_variables() == {env_name(field) for field in Settings.model_fields}


def test_the_documented_defaults_are_the_real_ones() -> None:
    """Each plain default in the table is the value the settings use."""
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)`", README, re.M))
    for field, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=False)
        shown = rows.get(env_name(field))
        if shown is None or info.default_factory is not None or default is None:
            continue
        if isinstance(default, bool):
            assert shown == str(default).lower(), field
        elif isinstance(default, Path):
            assert Path(shown) == default, field
        else:
            assert type(default)(shown) == default, field


def test_ci_runs_the_readmes_test_command() -> None:
    """.ci/run calls make test, and the README names make run and make test."""
    assert "make run" in README
    assert "make test" in README
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()
