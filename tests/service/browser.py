"""Drive Debian's headless Chromium (never a downloaded browser) through the Optuna dashboard."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# As checked in docs/design.md ("Known pitfalls"): root needs --no-sandbox; nothing may phone home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


@contextmanager
def chromium_page() -> Iterator[Page]:
    """A page of a fresh headless Chromium (Debian's, with CHROMIUM_ARGS), closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def dashboard_screenshot(
    base_url: str,
    *,
    study_id: int,
    study_name: str,
    trial_number: int,
    expect_text: str,
    screenshot: Path,
) -> str:
    """Open the dashboard's study list and the trial's page; the visible text of both.

    Waits until *study_name* is listed and *expect_text* (from the trial's note) is shown,
    and saves a screenshot of the trial page to *screenshot*.
    """
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base_url}/dashboard")
            page.get_by_text(study_name).first.wait_for()
            listing = page.inner_text("body")

            page.goto(f"{base_url}/dashboard/studies/{study_id}/trials")
            page.get_by_text(f"Trial {trial_number}", exact=True).first.click()
            page.get_by_text(expect_text).first.wait_for()
            page.screenshot(path=str(screenshot), full_page=True)
            return listing + "\n" + page.inner_text("body")
        finally:
            context.close()
