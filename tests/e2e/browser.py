"""A real browser for the e2e tests: Debian's Chromium (`apt install chromium`) driven by
Playwright, a bounded default wait for every action, and screenshots of what a person saw.

Screenshots go to $MLPLATFORM_ARTIFACTS (CI can upload that folder), else tests/artifacts/
(gitignored). A journey that fails leaves `<name>-failed.png` there too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Every click and wait is bounded by this. Generous: on a loaded 2-core machine the React UIs
# of Airflow and MLflow take many seconds to render a page.
ACTION_TIMEOUT_MS = 60_000


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("MLPLATFORM_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextmanager
def browser_page(name: str) -> Iterator[Page]:
    """A fresh browser (no cookies, no local storage) with one page; on failure, a screenshot
    named after the journey, so the artifact shows where it stopped."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(ACTION_TIMEOUT_MS)
            expect.set_options(timeout=ACTION_TIMEOUT_MS)
            try:
                yield page
            except BaseException:
                with suppress(Exception):  # a dead browser must not hide the test's own error
                    screenshot(page, f"{name}-failed")
                raise
        finally:
            browser.close()
