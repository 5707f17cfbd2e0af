"""What a person sees in a real browser, from opening the app to a prediction.

The flows share one server and run in order: data -> train -> evaluate -> predict,
as a person would use the app (one browser page, so one Streamlit session).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from scripts.browser import no_errors as _no_errors
from scripts.browser import open_page as _open
from scripts.browser import set_slider
from tests.realdata import real_data_root

pytestmark = pytest.mark.timeout(600)
PAGES = ("Data", "Train", "Evaluate", "Predict")
LONG = 240_000  # ms: training and TensorFlow start-up on a 2-core machine


@pytest.fixture(scope="module")
def page(browser, app_url):
    """One page (one Streamlit session) for the whole walk through the app."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_url)
    yield page
    context.close()


def test_app_opens_and_every_page_opens(page):
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    _no_errors(page)
    for title in PAGES:
        _open(page, title)
        _no_errors(page)


def test_training_shows_progress_and_survives_a_page_switch(page):
    _open(page, "Data")
    page.get_by_text("Generated demo set (synthetic, offline)").click()
    count = page.get_by_label("Number of images")
    count.fill("400")
    page.get_by_role("button", name="Apply settings").click()
    expect(page.get_by_text("SYNTHETIC data").first).to_be_visible()
    # The settings not touched keep their values (a widget remounted by the browser once
    # fell back to its minimum here: 32 px, p = 0.00, seed 0).
    expect(page.get_by_test_id("stSidebarUserContent")).to_contain_text(
        "400 generated images · 128 px · indoor p = 0.50 · seed 42"
    )
    _open(page, "Train")
    set_slider(page, "Epochs", 3)
    page.get_by_role("button", name="Start training").click()
    progress = page.get_by_test_id("stProgress").first
    expect(progress).to_be_visible(timeout=LONG)
    expect(page.get_by_text(re.compile(r"Epoch \d/3 · batch \d+/\d+")).first).to_be_visible(timeout=LONG)
    first = page.get_by_text(re.compile(r"Epoch \d/3 · batch \d+/\d+")).first.inner_text()
    _open(page, "Data")  # leave while it trains
    _open(page, "Train")
    done = page.get_by_role("button", name="Download the run bundle (.zip)")
    expect(done).to_be_visible(timeout=LONG)
    expect(page.get_by_test_id("stMetric").filter(has_text="Epochs").first).to_contain_text("3/3")
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    assert "Epoch" in first
    _no_errors(page)


def _heatmap_texts(page: Page) -> list[str]:
    # One snapshot: counting, then reading each chart raced with a rerun that redrew the page.
    return page.get_by_test_id("stPlotlyChart").all_inner_texts()


def test_moving_the_threshold_changes_the_report_and_heatmaps(page):
    _open(page, "Evaluate")
    expect(page.get_by_text("Classification report")).to_be_visible()
    micro = page.get_by_test_id("stMetric").filter(has_text="Micro F1").first
    before_metric = micro.inner_text()
    before_report = page.get_by_test_id("stDataFrame").first.inner_text()
    before_heatmaps = _heatmap_texts(page)
    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(35):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_role("slider").first).to_have_value("0.85", timeout=20_000)
    expect(micro).not_to_have_text(before_metric, timeout=20_000)
    expect(page.get_by_test_id("stDataFrame").first).not_to_have_text(before_report, timeout=20_000)
    # Plotly redraws after the rerun's delta arrives; poll rather than guess a delay.
    for _ in range(40):
        if _heatmap_texts(page) != before_heatmaps:
            break
        page.wait_for_timeout(500)
    assert _heatmap_texts(page) != before_heatmaps
    _no_errors(page)


def _chart(page: Page, title: str):
    return page.get_by_test_id("stPlotlyChart").filter(has=page.locator(".gtitle", has_text=re.compile(f"^{title}$")))


def test_a_click_on_a_confusion_cell_opens_its_images_and_the_gallery_follows_the_threshold(page):
    _open(page, "Evaluate")
    heatmap = _chart(page, "dog").first
    heatmap.scroll_into_view_if_needed()
    area = heatmap.locator(".nsewdrag").first.bounding_box()
    # Rows are actual no/yes (top to bottom), columns predicted no/yes: FP is the top-right cell.
    page.mouse.click(area["x"] + area["width"] * 0.75, area["y"] + area["height"] * 0.25)
    cell = page.get_by_role("radiogroup", name="Cell")
    expect(cell.get_by_role("radio", name=re.compile(r"^FP: "))).to_be_checked(timeout=20_000)
    expect(page.get_by_role("radiogroup", name="Label").get_by_role("radio", name="dog")).to_be_checked()
    expect(page.get_by_text(re.compile(r"^At threshold 0\.85 for dog: TP \d+ · FP \d+")).first).to_be_visible()
    roc = _chart(page, "dog: ROC").first
    expect(roc).to_contain_text("threshold 0.85")
    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(45):
        page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("slider").first).to_have_value("0.4", timeout=20_000)
    # The gallery and the operating point follow the new threshold.
    counts = page.get_by_text(re.compile(r"^At threshold 0\.40 for dog: TP \d+ · FP (\d+)")).first
    expect(counts).to_be_visible(timeout=20_000)
    expect(roc).to_contain_text("threshold 0.40", timeout=20_000)
    false_positives = int(re.search(r"FP (\d+)", counts.inner_text()).group(1))
    assert false_positives > 0, "a threshold of 0.40 lets some non-dogs through"
    expect(page.get_by_text(re.compile(r"false positives for dog on the test split")).first).to_be_visible()
    images = page.get_by_test_id("stImage")
    expect(images).to_have_count(min(8, false_positives))
    _no_errors(page)


def test_predict_shows_probabilities_and_a_clear_error_for_a_bad_file(page, tmp_path):
    photo = real_data_root() / "cats_and_dogs_filtered" / "validation" / "dogs" / "dog.2001.jpg"
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a text file, not a photo")
    _open(page, "Predict")
    # The thresholds tuned on Evaluate came along.
    expect(page.get_by_text("Thresholds: dog 0.40, cat 0.40, indoor 0.40")).to_be_visible()
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files([str(photo), str(fake)])
    expect(page.get_by_text(re.compile(r"holiday\.jpg.*Not a supported image")).first).to_be_visible(timeout=60_000)
    card = page.get_by_text(re.compile(r"dog\.2001\.jpg\s*→")).first
    expect(card).to_be_visible(timeout=60_000)
    assert re.search(r"dog|cat|indoor|none of the labels", card.inner_text())
    table = page.get_by_test_id("stDataFrame").last
    expect(table).to_contain_text("dog.2001.jpg")
    picture = page.get_by_test_id("stImage").first.locator("img")
    plain = picture.get_attribute("src")
    page.get_by_role("radiogroup", name=re.compile("Grad-CAM")).get_by_text("dog", exact=True).click()
    expect(picture).not_to_have_attribute("src", plain, timeout=30_000)  # the overlay replaces the thumbnail
    _no_errors(page)


def test_three_hundred_real_photos_in_one_upload_give_three_hundred_rows(page):
    folder = real_data_root() / "cats_and_dogs_filtered" / "validation"
    photos = sorted((folder / "cats").glob("*.jpg"))[:150] + sorted((folder / "dogs").glob("*.jpg"))[:150]
    _open(page, "Predict")
    delete = page.get_by_role("button", name=re.compile(r"^Remove "))
    while delete.count():  # start from an empty uploader: new files add to the ones there
        delete.first.click()
        page.wait_for_timeout(300)
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files([str(path) for path in photos])
    expect(page.get_by_text(re.compile(r"300 file\(s\): 300 predicted")).first).to_be_visible(timeout=240_000)
    grid = page.get_by_test_id("stDataFrame").first.locator("table[role=grid]")  # the grid's accessible mirror
    expect(grid).to_have_attribute("aria-rowcount", "301")  # a header row and a row per photo
    expect(page.get_by_test_id("stImage")).to_have_count(12)  # a page of cards
    _no_errors(page)
