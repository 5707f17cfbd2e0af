"""Walk the app in headless Chromium with two trained models and save screenshots to docs/.

``python -m scripts.screenshots [--images 2000] [--epochs 5] [--own-data-only]``. Uses the real dataset
when ``MLCORE_DATA_DIR`` holds it, else the generated demo set. Also prints the
server's peak resident memory for the session it just drove.
Regenerate the screenshots whenever the UI changes.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from scripts.app_server import CHROMIUM_ARGS, ROOT, chromium_path, peak_rss_mb, running_app
from scripts.browser import full_height_screenshot, open_page, set_slider

DOCS = ROOT / "docs"
WIDTH = 1100
COMPARE_EPOCHS = 4
ALL_IMAGES_LOADED = (
    "() => [...document.querySelectorAll('[data-testid=stImage] img')].every(image => image.naturalWidth > 0)"
)


def save(page: Page, name: str) -> None:
    """The page at its content's full height, scaled to ``WIDTH``."""
    path = DOCS / f"{name}.png"
    page.mouse.move(0, 0)  # no hover tooltip in the picture
    height = full_height_screenshot(page, path, width=WIDTH)
    print(f"saved docs/{name}.png ({WIDTH}x{height}, {path.stat().st_size // 1024} KB)")


def walk(page: Page, images: int, epochs: int, photos: list[Path]) -> None:
    open_page(page, "Data")
    if photos:  # let the first load of the default (real) data finish before applying settings
        expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=180_000)
    if not photos:
        page.get_by_text("Generated demo set (synthetic, offline)").click()
    page.get_by_label("Number of images").fill(str(images))
    page.get_by_role("button", name="Apply settings").click()
    expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=180_000)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=60_000)
    save(page, "data")
    open_page(page, "Train")
    set_slider(page, "Epochs", epochs)
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(re.compile(rf"Epoch [2-9]/{epochs} · batch")).first).to_be_visible(timeout=600_000)
    save(page, "train-live")
    expect(page.get_by_role("button", name="Download the run bundle (.zip)")).to_be_visible(timeout=900_000)
    page.get_by_text("Augmentation: training images as the compact network sees them").click()
    expect(page.get_by_test_id("stExpander").get_by_test_id("stImage").first).to_be_visible()
    save(page, "train-done")
    open_page(page, "Evaluate")
    page.get_by_role("button", name="F1-best per label").click()
    expect(page.get_by_text("F1-best on the validation split").first).to_be_visible()
    page.get_by_text(re.compile("^Grad-CAM: where the network found evidence for")).click()
    page.wait_for_timeout(3000)
    save(page, "evaluate")
    open_page(page, "Predict")
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp) / "not-a-photo.jpg"
        broken.write_text("a text file with a .jpg name")
        page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files([*map(str, photos), str(broken)])
        expect(page.get_by_text(re.compile(r"not-a-photo\.jpg.*Not a supported image")).first).to_be_visible(
            timeout=120_000
        )
        expect(page.get_by_test_id("stImage")).to_have_count(min(len(photos), 12), timeout=60_000)
        if photos:
            page.get_by_role("radiogroup", name=re.compile("Grad-CAM")).get_by_text("dog", exact=True).click()
            page.wait_for_timeout(5000)
        save(page, "predict")
    open_page(page, "Train")  # a second run, to list and compare
    page.get_by_text("Compact residual CNN (stronger)").click()
    set_slider(page, "Epochs", COMPARE_EPOCHS)
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(f"compact CNN, trained for {COMPARE_EPOCHS}/{COMPARE_EPOCHS} epochs").first).to_be_visible(
        timeout=900_000
    )
    open_page(page, "Runs")
    expect(page.get_by_test_id("stCode").filter(has_text="?run=").first).to_be_visible()
    save(page, "runs")
    open_page(page, "Compare")
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    page.wait_for_timeout(2000)
    save(page, "compare")


def own_data(page: Page, folder: Path) -> None:
    """A second session: a zip of pictures with five real labels in a labels.csv, trained and evaluated."""
    from tests import zips

    archive, _ = zips.multilabel_zip(folder / "shapes.zip", count=400)
    open_page(page, "Data")
    page.get_by_text("Your images (upload a zip)").click()
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(archive))
    expect(page.get_by_text("shapes.zip").first).to_be_visible()
    page.get_by_role("button", name="Apply settings").click()
    expect(page.get_by_text("Apply label options")).to_be_visible(timeout=180_000)
    page.get_by_text("Add the random 'indoor' tag as a control").click()
    page.get_by_role("button", name="Apply label options").click()
    expect(page.get_by_test_id("stSidebarUserContent")).to_contain_text("Uploaded zip")
    expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=180_000)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=60_000)
    save(page, "own-data")
    open_page(page, "Train")
    set_slider(page, "Epochs", 12)
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_role("button", name="Download the run bundle (.zip)")).to_be_visible(timeout=900_000)
    open_page(page, "Evaluate")
    page.get_by_role("button", name="F1-best per label").click()
    expect(page.get_by_text("F1-best on the validation split").first).to_be_visible()
    page.wait_for_timeout(3000)
    save(page, "evaluate-own-data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000, help="training images (a stratified subset)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--own-data-only", action="store_true", help="only the uploaded-zip session")
    args = parser.parse_args()
    executable = chromium_path()
    if executable is None:
        raise SystemExit("no system Chromium: install Debian's 'chromium' package or set CHROMIUM_PATH")
    DOCS.mkdir(exist_ok=True)
    data = Path(os.environ.get("MLCORE_DATA_DIR", "/nonexistent")) / "cats_and_dogs_filtered" / "validation"
    photos = (
        [path for name in ("dogs", "cats") for path in sorted((data / name).glob("*.jpg"))[3:9]]
        if data.is_dir()
        else []
    )
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_app(Path(tmp) / "server.log", env={"MLCORE_RUN_STORE": str(Path(tmp) / "runs")}) as (url, process),
    ):
        print(f"server healthy after {time.perf_counter() - started:.1f} s")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(url)
            expect(page.get_by_role("heading", name="Data").first).to_be_visible()
            print(f"first page drawn after {time.perf_counter() - started:.1f} s")
            if not args.own_data_only:
                walk(page, args.images, args.epochs, photos)
            second = browser.new_page(viewport={"width": 1400, "height": 900})
            second.set_default_timeout(60_000)
            second.goto(url)
            own_data(second, Path(tmp))
            browser.close()
        print(f"server peak RSS: {peak_rss_mb(process.pid):.0f} MB")


if __name__ == "__main__":
    main()
