"""The Predict page: real photos, bad files one by one, camera, CSV, and run bundles."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from app import runs, state
from app.widgets import plain
from mlcore import predict

pytestmark = pytest.mark.timeout(600)


def expected_probabilities(run, data: bytes) -> np.ndarray:
    image = predict.to_model_input(predict.load_image(data), run.image_size)
    return predict.predict_proba(run.model, image[None])[0]


def png_bytes(size=(50, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size[::-1], 3), 200, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def predictions(at) -> pd.DataFrame:
    return at.dataframe[0].value  # the only table on the page


def test_without_a_model_the_page_says_how_to_get_one(ui):
    at = ui.open_page(ui.new_app(), "predict")
    assert not at.exception
    assert any("No model yet" in info.value and "Train" in info.value for info in at.info)
    assert ui.key(at, "predict", "images") not in [uploader.key for uploader in at.file_uploader]


def test_a_real_photo_gets_three_probabilities_and_bad_files_their_own_message(trained_app, ui):
    photo = ui.real_jpeg()
    data = photo.read_bytes()
    at = ui.open_page(trained_app, "predict")
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(
        [
            (photo.name, data, "image/jpeg"),
            ("truncated.jpg", data[: len(data) // 3], "image/jpeg"),
            ("notes.png", b"this is not an image at all", "image/png"),
            ("empty.gif", b"", "image/gif"),
            ("drawing.png", png_bytes(), "image/png"),
        ]
    ).run()

    assert not at.exception
    run = state.trained_run(at.session_state)
    table = predictions(at).set_index("file")
    assert list(table.index) == [photo.name, "truncated.jpg", "notes.png", "empty.gif", "drawing.png"]
    expected = expected_probabilities(run, data)
    np.testing.assert_allclose(table.loc[photo.name, ["dog", "cat", "indoor"]].to_numpy(float), expected, atol=1e-5)
    assert ((expected >= 0) & (expected <= 1)).all()
    thresholds = state.thresholds(run, at.session_state)
    passing = [label for label, p in zip(run.label_names, expected, strict=True) if p >= thresholds[label]]
    assert table.loc[photo.name, "predicted"] == (", ".join(passing) or "none of the labels")

    errors = {error.value.split("**")[1]: error.value for error in at.error}
    assert set(errors) == {"truncated.jpg", "notes.png", "empty.gif"}
    assert "truncated" in errors["truncated.jpg"]
    assert "Not a supported image" in errors["notes.png"]
    assert "empty" in errors["empty.gif"]
    assert table.loc["truncated.jpg", ["dog", "cat", "indoor"]].isna().all()
    assert len(at.image) == 2, "both readable images are shown"
    bars = [figure for figure in ui.plotly_figures(at) if figure["data"][0]["type"] == "bar"]
    assert bars[0]["data"][0]["x"] == pytest.approx(list(expected), abs=1e-5)
    assert [shape["x0"] for shape in bars[0]["layout"]["shapes"]] == pytest.approx(list(thresholds.values()))
    assert at.get("download_button"), "the table can be downloaded as CSV"


def test_three_hundred_photos_in_one_upload_give_a_row_each_and_a_paged_grid(trained_app, ui, real_data_dir):
    """A folder of holiday photos: hundreds of files at once, awkward ones among them."""
    from app import uploads

    folder = real_data_dir / "cats_and_dogs_filtered" / "validation"
    photos = sorted((folder / "cats").glob("*.jpg"))[:150] + sorted((folder / "dogs").glob("*.jpg"))[:150]
    files = [(path.name, path.read_bytes(), "image/jpeg") for path in photos]
    awkward = [(f"broken{i}.jpg", b"not an image %d" % i, "image/jpeg") for i in range(15)]
    at = ui.open_page(trained_app, "predict")
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(files + awkward).run()

    assert not at.exception
    run = state.trained_run(at.session_state)
    table = predictions(at)
    assert len(table) == 315
    assert list(table["file"]) == [name for name, *_ in files + awkward]
    batch = np.stack([predict.to_model_input(predict.load_image(data), run.image_size) for _, data, _ in files])
    np.testing.assert_allclose(
        table[["dog", "cat", "indoor"]].to_numpy(float)[:300], predict.predict_proba(run.model, batch), atol=1e-5
    )
    assert (table["error"][300:] != "").all()
    assert table[["dog", "cat", "indoor"]][300:].isna().all().all()
    assert len(at.image) == 12, "a page of cards, not 300"
    assert any("315 file(s)" in block.value and "15 refused" in block.value for block in at.markdown)
    cached = state.prediction_cache(at.session_state).values()
    assert all(isinstance(result.thumbnail, (bytes, type(None))) for result in cached)
    assert sum(len(result.thumbnail or b"") for result in cached) < 300 * 40_000, "thumbnails only"

    at.multiselect(key=ui.key(at, "predict", "filter")).set_value(["cat"]).run()
    assert all("cat" in predicted for predicted in predictions(at)["predicted"])
    assert len(predictions(at)) == sum("cat" in p for p in table["predicted"])
    at.multiselect(key=ui.key(at, "predict", "filter")).set_value(
        ["dog", "cat", "indoor", uploads.NONE_LABEL, "refused"]
    )
    at.selectbox(key=ui.key(at, "predict", "order")).set_value("dog").run()
    ordered = predictions(at)["dog"].to_numpy(float)[:300]
    assert (np.diff(ordered) <= 0).all(), "most dog-like first"
    at.number_input(key=ui.key(at, "predict", "page")).set_value(25).run()
    assert not at.exception
    assert len(at.image) == 300 - 24 * 12
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(None).run()


def test_an_upload_over_the_file_limit_scores_the_first_files_and_says_so(trained_app, ui, monkeypatch):
    from app import uploads

    monkeypatch.setattr(uploads, "MAX_FILES", 20)  # the page's rule, at a size a test can upload quickly
    files = [(f"p{i:02d}.png", png_bytes((40 + i, 30)), "image/png") for i in range(23)]
    at = ui.open_page(trained_app, "predict")
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(files).run()

    assert not at.exception
    assert list(predictions(at)["file"]) == [name for name, *_ in files[:20]]
    assert any("first 20 of the 23 files" in warning.value for warning in at.warning)
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(files[:20]).run()
    assert not any("first 20" in warning.value for warning in at.warning)
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(None).run()


def test_scoring_that_would_not_fit_in_the_memory_budget_is_refused_and_the_files_wait(trained_app, ui, monkeypatch):
    from app import jobs
    from mlcore import memory

    monkeypatch.setattr(jobs, "GUARD", memory.MemoryGuard(budget=memory.process_rss() + 10 * memory.MB))
    at = ui.open_page(trained_app, "predict")
    files = [("grey.png", png_bytes(), "image/png"), ("wide.png", png_bytes((80, 20)), "image/png")]
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(files).run()
    assert not at.exception
    assert any("Scoring 2 image(s) would need about" in error.value for error in at.error)
    assert not at.dataframe, "nothing scored"

    monkeypatch.setattr(jobs, "GUARD", memory.MemoryGuard(budget=2**62))
    at.run()
    assert not at.error
    assert list(predictions(at)["file"]) == ["grey.png", "wide.png"], "the same uploads, scored once there is room"
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(None).run()


def test_a_card_shows_the_grad_cam_overlay_of_the_chosen_label(trained_app, ui):
    photo = ui.real_jpeg()
    at = ui.open_page(trained_app, "predict")
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value([(photo.name, photo.read_bytes(), "image/jpeg")])
    at.run()
    plain = [image.value for image in at.image]
    assert len(plain) == 1
    for label in ("dog", "cat"):
        at.radio(key=ui.key(at, "predict", "cam")).set_value(label).run()
        assert not at.exception
        assert [image.value for image in at.image] != plain, f"the {label} overlay replaces the thumbnail"
        run = state.trained_run(at.session_state)
        cached = [key for key in state.explanations(at.session_state) if key[0] == run.id and key[2] == label]
        assert len(cached) == 1
    at.radio(key=ui.key(at, "predict", "cam")).set_value(None).run()
    assert [image.value for image in at.image] == plain
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(None).run()


def test_a_camera_picture_is_predicted_too(trained_app, ui):
    photo = ui.real_jpeg()
    at = ui.open_page(trained_app, "predict")
    at.toggle(key=ui.key(at, "predict", "camera_on")).set_value(True).run()
    at.camera_input(key=ui.key(at, "predict", "camera")).set_value(("shot.jpg", photo.read_bytes(), "image/jpeg")).run()

    assert not at.exception
    assert "camera photo" in list(predictions(at)["file"])


@pytest.fixture(scope="module")
def bundle(trained_app) -> bytes:
    """The trained run as the Train page's download button would hand it out."""
    run = state.trained_run(trained_app.session_state)
    return runs.bundle_bytes(run, {"dog": 0.4, "cat": 0.6, "indoor": 0.5})


def test_a_downloaded_bundle_loads_in_a_new_session_and_predicts_the_same(trained_app, bundle, ui):
    run = state.trained_run(trained_app.session_state)
    thresholds = {"dog": 0.4, "cat": 0.6, "indoor": 0.5}
    data = png_bytes((64, 64))

    at = ui.open_page(ui.new_app(), "predict")
    at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value(
        ("bad.zip", b"PK but not really", "application/zip")
    ).run()
    assert not at.exception
    assert any(plain("bad.zip") in error.value and "not a zip" in error.value for error in at.error)

    at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value(("run.zip", bundle, "application/zip")).run()
    assert not at.exception
    assert any(f"Loaded **{plain('run.zip')}**" in success.value for success in at.success)
    loaded = state.bundle_run(at.session_state)
    assert state.thresholds(loaded, at.session_state) == thresholds
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value(("square.png", data, "image/png")).run()
    shown = predictions(at).set_index("file").loc["square.png", ["dog", "cat", "indoor"]].to_numpy(float)
    np.testing.assert_allclose(shown, expected_probabilities(run, data), atol=1e-5)


def test_bundle_upload_can_be_switched_off(ui, monkeypatch):
    monkeypatch.setenv("MLCORE_ALLOW_BUNDLE_UPLOAD", "false")
    at = ui.open_page(ui.new_app(), "predict")
    assert not at.exception
    assert ui.key(at, "predict", "bundle") not in [uploader.key for uploader in at.file_uploader]
    assert not any("bundle" in info.value for info in at.info)


def test_a_loaded_bundle_is_scored_once_on_the_evaluate_page(trained_app, bundle, ui):
    trained = state.trained_run(trained_app.session_state)
    at = ui.new_app()
    ui.apply_data_settings(at)  # the same demo data the bundle was trained on
    ui.open_page(at, "predict")
    at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value(("run.zip", bundle, "application/zip")).run()
    ui.open_page(at, "evaluate")
    assert any("no evaluation yet" in info.value for info in at.info)

    at.button(key=ui.key(at, "eval", "score")).click().run()
    assert not at.exception
    loaded = state.bundle_run(at.session_state)
    np.testing.assert_allclose(loaded.evaluation.test.y_score, trained.evaluation.test.y_score, atol=1e-5)
    assert at.dataframe, "the report is shown"


def test_scoring_a_loaded_bundle_that_would_not_fit_in_memory_is_refused_then_done(bundle, ui, monkeypatch):
    from app import jobs
    from mlcore import memory

    monkeypatch.setattr(jobs, "GUARD", memory.MemoryGuard(budget=memory.process_rss() + 10 * memory.MB))
    at = ui.new_app()
    ui.apply_data_settings(at)
    ui.open_page(at, "predict")
    at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value(("run.zip", bundle, "application/zip")).run()
    ui.open_page(at, "evaluate")
    at.button(key=ui.key(at, "eval", "score")).click().run()
    assert not at.exception
    assert any("Scoring the validation and test splits would need about" in error.value for error in at.error)
    assert state.bundle_run(at.session_state).evaluation is None, "nothing scored"

    monkeypatch.setattr(jobs, "GUARD", memory.MemoryGuard(budget=2**62))
    at.button(key=ui.key(at, "eval", "score")).click().run()
    assert not at.exception
    assert state.bundle_run(at.session_state).evaluation is not None
    assert at.dataframe, "the report is shown"


def test_with_a_trained_and_a_loaded_model_the_user_picks_one(trained_app, bundle, ui):
    at = ui.open_page(trained_app, "predict")
    at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value(("run.zip", bundle, "application/zip")).run()
    picker = at.selectbox(key=ui.key(at, "predict", "model"))
    assert len(picker.options) == 2
    assert state.active_kind(at.session_state) == "bundle"
    assert state.bundle_run(at.session_state).stored is not None, "a loaded bundle is kept in the workspace too"

    picker.set_value(state.trained_run(at.session_state).id).run()
    assert state.active_kind(at.session_state) == "trained"
    assert any("(trained)" in caption.value for caption in at.sidebar.caption)
    at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value(None).run()
