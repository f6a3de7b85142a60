"""Headless Chromium for the tests that drive a page: Playwright, with Debian's ``chromium``.

A test that needs the browser takes the ``browser`` fixture (``tests/conftest.py`` does not
import this module: a test module does, ``from tests.browser import browser``). Without
Chromium or Playwright the test is skipped with a message saying what to install, so that
``make test`` still runs on such a machine; ``.ci/run`` installs Chromium, so CI always runs it.

Chromium is found at ``$SCEAU_CHROMIUM``, else on the ``PATH`` (``chromium``,
``chromium-browser``). It runs with a new empty profile and without its background
connections: this machine's network is closed, and a test must not depend on anything but the
page it drives. Screenshots go to ``build/screenshots/<name>.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "screenshots"

CHROMIUM_FLAGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox does not start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    """The Chromium executable the tests use, or None."""
    configured = os.environ.get("SCEAU_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module's tests (skips when there is none)."""
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium: install Debian's chromium package (apt-get install -y chromium), or "
            "set SCEAU_CHROMIUM to a Chromium executable; .ci/run installs it"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no Playwright: pip install -e '.[dev]' installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as ``build/screenshots/<name>.png`` and return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
