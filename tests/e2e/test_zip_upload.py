"""A visitor's own pictures in a real browser: a zip of class folders uploaded on the Data
page, trained, evaluated, with a bad zip refused along the way (its own session)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from scripts.browser import no_errors, open_page, set_slider
from tests import zips

pytestmark = pytest.mark.timeout(600)
LONG = 240_000


def _upload(page, path) -> None:
    open_page(page, "Data")
    page.get_by_text("Your images (upload a zip)").click()
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(path))
    expect(page.get_by_text(path.name).first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Apply settings").click()


def test_an_uploaded_zip_of_class_folders_trains_and_is_evaluated(browser, app_url, tmp_path):
    one_class = zips.write_zip(tmp_path / "only cats.zip", zips.class_members({"cats": 12}))
    good = zips.macos_zip(tmp_path / "My Pets.zip", per_class=30)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_url)
    try:
        _upload(page, one_class)
        expect(page.get_by_text(re.compile("one class folder only")).first).to_be_visible(timeout=60_000)
        no_errors(page)

        page.get_by_role("button", name=re.compile(r"^Remove ")).first.click()
        _upload(page, good)
        sidebar = page.get_by_test_id("stSidebarUserContent")
        expect(sidebar).to_contain_text("Uploaded zip My Pets.zip", timeout=60_000)
        expect(page.get_by_text("Images per split")).to_be_visible(timeout=60_000)
        # The macOS clutter is counted, not fatal.
        expect(page.get_by_text(re.compile(r"5 files were skipped: hidden or system file")).first).to_be_visible()
        no_errors(page)

        open_page(page, "Train")
        set_slider(page, "Epochs", 2)
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_role("button", name="Download the run bundle (.zip)")).to_be_visible(timeout=LONG)
        open_page(page, "Evaluate")
        expect(page.get_by_text("Classification report")).to_be_visible()
        for label in ("dog", "cat", "indoor"):
            chart = page.get_by_test_id("stPlotlyChart").filter(
                has=page.locator(".gtitle", has_text=re.compile(f"^{label}$"))
            )
            expect(chart.first).to_be_visible()
        expect(page.get_by_test_id("stDataFrame").first).to_contain_text("indoor")
        no_errors(page)
    finally:
        context.close()
