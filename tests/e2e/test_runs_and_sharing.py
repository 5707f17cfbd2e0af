"""Runs that outlast the server, in a real browser: train, restart the server process,
reopen the same address; a fresh visitor sees nothing; a share link shows one run read-only.

This module runs its own server (twice, on one port) over its own run store.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from scripts.app_server import free_port, running_app
from scripts.browser import no_errors, open_page, set_slider

pytestmark = pytest.mark.timeout(900)
LONG = 240_000  # ms: training and TensorFlow start-up on a 2-core machine
SLOW = 60_000  # ms: a page drawn by a server that has just started


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Start and restart the real server over one run store, on one port."""
    folder = tmp_path_factory.mktemp("runs-server")
    env = {"MLCORE_RUN_STORE": str(folder / "store")}
    port = free_port()

    def start(name: str):
        return running_app(folder / f"{name}.log", env=env, port=port)

    return start


def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    return context, page


def train_on_demo(page, url: str) -> None:
    page.goto(url)
    open_page(page, "Data")
    page.get_by_text("Generated demo set (synthetic, offline)").click()
    page.get_by_label("Number of images").fill("120")
    page.get_by_role("button", name="Apply settings").click()
    expect(page.get_by_text("SYNTHETIC data").first).to_be_visible()
    open_page(page, "Train")
    set_slider(page, "Epochs", 2)
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_role("button", name="Download the run bundle (.zip)")).to_be_visible(timeout=LONG)


def test_runs_survive_a_restart_and_share_links_show_one_run_read_only(browser, server):
    owner, page = new_page(browser)
    with server("first") as (url, _process):
        train_on_demo(page, url)
        open_page(page, "Runs")
        expect(page.get_by_text("seed CNN, trained for 2/2 epochs").first).to_be_visible()
        page.get_by_label("Name").fill("two epochs on the demo set")
        page.get_by_label("Name").press("Enter")
        renamed = page.get_by_role("heading", name=re.compile("^Active: two epochs on the demo set"))
        expect(renamed).to_be_visible()
        address = page.url
        assert re.search(r"[?&]ws=[\w-]{32}", address), address
        link = page.get_by_test_id("stCode").filter(has_text="?run=").first.inner_text().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/runs\?run=[\w-]{32}", link), link
        no_errors(page)
    owner.close()

    with server("second") as (url, _process):
        # The same address after a restart: the workspace and its run are back.
        again, page = new_page(browser)
        page.goto(address)
        restored = page.get_by_role("heading", name=re.compile("^Active: two epochs on the demo set"))
        expect(restored).to_be_visible(timeout=SLOW)  # a cold server's first page
        open_page(page, "Evaluate")
        expect(page.get_by_text("Classification report")).to_be_visible()
        expect(page.get_by_test_id("stSlider").filter(has_text="Threshold for dog")).to_be_visible(timeout=60_000)
        no_errors(page)
        again.close()

        # A visitor without the token: a new, empty workspace.
        stranger, page = new_page(browser)
        page.goto(url)
        open_page(page, "Runs")
        expect(page.get_by_text("No runs yet in this workspace")).to_be_visible(timeout=SLOW)
        assert "two epochs" not in page.content()
        stranger.close()

        # The share link, in another browser context: that run, read-only.
        visitor, page = new_page(browser)
        page.goto(link)
        expect(page.get_by_text("was shared with you by link").first).to_be_visible(timeout=SLOW)
        open_page(page, "Evaluate")
        expect(page.get_by_text("Classification report")).to_be_visible()
        expect(page.get_by_text("was shared with you by link").first).to_be_visible()
        expect(page.get_by_test_id("stSlider").filter(has_text="Threshold for dog")).to_have_count(0)
        no_errors(page)
        visitor.close()

        # A wrong token is refused in words.
        guesser, page = new_page(browser)
        page.goto(re.sub(r"run=[\w-]+", "run=" + "A" * 32, link))
        expect(page.get_by_text("This share link is unknown or has expired").first).to_be_visible(timeout=SLOW)
        no_errors(page)
        guesser.close()
