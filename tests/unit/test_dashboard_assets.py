"""The dashboard's files reference only each other: every asset a page or module names
is shipped, and nothing is loaded from another origin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oye_api.dashboard.pages import PUBLIC_ASSETS, STATIC_DIR, STATIC_PATH

pytestmark = pytest.mark.unit

PAGES = ("index.html", "login.html")
#: A name, not an address: nothing is fetched from it.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def referenced(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', (STATIC_DIR / page).read_text())


def test_the_pages_name_only_shipped_assets_of_this_origin() -> None:
    """No CDN, no other host: every src/href is one of our static files."""
    for page in PAGES:
        for url in referenced(page):
            assert url.startswith(f"{STATIC_PATH}/"), (page, url)
            assert (STATIC_DIR / url.removeprefix(f"{STATIC_PATH}/")).is_file(), (page, url)


def test_every_module_import_is_a_shipped_module() -> None:
    """ES modules import each other by relative path; each target exists."""
    modules = [*sorted((STATIC_DIR / "js").glob("*.js")), STATIC_DIR / "login.js"]
    for module in modules:
        text = module.read_text()
        urls = set(re.findall(r"https?://[^\s\"'`]+", text)) - {SVG_NAMESPACE}
        assert not urls, (module.name, urls)
        for target in re.findall(r'from "(\.[^"]+)"', text):
            assert (module.parent / target).resolve().is_file(), (module.name, target)


def test_the_login_page_needs_only_public_assets() -> None:
    """What the login page loads is served without a login; everything else is not."""
    names = {Path(url).name for url in referenced("login.html")}
    assert names <= PUBLIC_ASSETS
