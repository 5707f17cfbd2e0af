"""What a person does in the browser, shared by the browser tests and the screenshot script."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect


def open_page(page: Page, title: str) -> None:
    """Click a page in the sidebar navigation and wait for its heading."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible()


def no_errors(page: Page) -> None:
    """No Streamlit exception element anywhere on the page."""
    expect(page.get_by_test_id("stException")).to_have_count(0)


def set_slider(page: Page, label: str, value: float, *, step: float = 1) -> None:
    """Move the slider labelled ``label`` to ``value`` with the keyboard, as a person would."""
    slider = page.get_by_test_id("stSlider").filter(has_text=label).first.get_by_role("slider")
    slider.focus()
    current = float(slider.input_value())
    key = "ArrowRight" if value > current else "ArrowLeft"
    for _ in range(round(abs(value - current) / step)):
        page.keyboard.press(key)
    expect(slider).to_have_value(f"{value:g}")


def full_height_screenshot(page: Page, path: Path, *, width: int) -> int:
    """Save the page at its content's full height; returns the height in pixels.

    Streamlit scrolls its own main container, not the document, so a plain
    full-page screenshot stops at the viewport: grow the viewport to the main
    container's scroll height first, then restore it.
    """
    viewport = page.viewport_size
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], section.main, '
        '[data-testid="stAppViewContainer"]\')].map(e => e.scrollHeight), document.body.scrollHeight)'
    )
    page.set_viewport_size({"width": viewport["width"], "height": int(height) + 40})
    page.wait_for_timeout(1500)  # let charts re-layout and finish their transitions
    try:
        image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    finally:
        page.set_viewport_size(viewport)
    scaled = round(image.height * width / image.width)
    image = image.resize((width, scaled), Image.Resampling.LANCZOS).quantize(colors=192)
    image.save(path, optimize=True)
    return image.height
