"""Your own images: a zip uploaded on the Data page, class folders or labels.csv, through to
training, Evaluate and Predict."""

from __future__ import annotations

import functools
import gc
import io
import os
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import address, state, uploaded_data
from app.widgets import plain
from mlcore import datasets, metrics, predict
from mlcore.config import DataConfig
from tests import zips

pytestmark = pytest.mark.timeout(900)


def upload_zip(ui, at, name: str, data: bytes, **settings):
    """Pick the upload source, choose the zip and apply the Data form."""
    ui.open_page(at, "data")
    at.radio(key=ui.key(at, "data", "source")).set_value("zip")
    at.file_uploader(key=ui.key(at, "data", "zip")).set_value((name, data, "application/zip"))
    at.number_input(key=ui.key(at, "data", "count")).set_value(settings.get("count", 2000))
    at.select_slider(key=ui.key(at, "data", "size")).set_value(settings.get("size", 48))
    return at.button(key=ui.key(at, "data", "apply")).click().run()


def shown_counts(ui, at) -> dict[str, list[int]]:
    traces = ui.figure_titled(at, "Images tagged with each label")["data"]
    return {trace["name"]: list(trace["y"]) for trace in traces}


@pytest.fixture(scope="module")
def two_class_bytes(tmp_path_factory) -> bytes:
    return zips.two_class_zip(tmp_path_factory.mktemp("zip") / "pets.zip", per_class=40).read_bytes()


def test_a_two_class_zip_trains_and_evaluates_in_the_session_that_uploaded_it(ui, two_class_bytes):
    at = upload_zip(ui, ui.new_app(), "My pets.zip", two_class_bytes)
    assert not at.exception, at.exception
    assert not at.error, [error.value for error in at.error]
    config = state.data_config(at.session_state)
    archive = Path(config.archive)
    assert config.source == "zip"
    assert archive.name == "My pets.zip"
    assert archive.read_bytes() == two_class_bytes
    assert archive.is_relative_to(uploaded_data.root())
    expected = datasets.load_splits(config)
    assert expected.label_names == ("dog", "cat", "indoor")
    assert expected.sizes() == {"train": 58, "validation": 6, "test": 16}
    counts = shown_counts(ui, at)
    parts = (expected.train, expected.validation, expected.test)
    assert counts["dog"] == [int(part.targets[:, 0].sum()) for part in parts]
    shown_name = plain("My pets.zip")
    assert any("Uploaded zip" in caption.value and shown_name in caption.value for caption in at.sidebar.caption)

    ui.start_training(at, epochs=2)
    ui.wait_for_training(at)
    run = state.trained_run(at.session_state)
    assert run.label_names == ("dog", "cat", "indoor")
    assert run.data_config == config
    at = ui.open_page(at, "evaluate")
    assert not at.exception
    y_score = predict.predict_proba(run.model, expected.test.images)
    report = metrics.classification_report_frame(expected.test.targets, y_score, threshold=0.5, labels=run.label_names)
    pd.testing.assert_frame_equal(at.dataframe[0].value, report, atol=1e-6)
    assert not any("private" in info.value or "not loaded" in info.value for info in at.info), "the owner's gallery"

    # Someone opening the run's share link sees its numbers, never the uploaded pictures.
    visitor = ui.open_page(ui.open_address({"run": run.stored.share_token}), "evaluate")
    assert not visitor.exception
    pd.testing.assert_frame_equal(visitor.dataframe[0].value, report, atol=1e-6)
    assert any("they stay private" in info.value for info in visitor.info)
    assert len(visitor.image) == 0


def test_a_multi_label_zip_gives_five_labels_everywhere(ui, tmp_path):
    archive, tags = zips.multilabel_zip(tmp_path / "shapes.zip", count=150)
    at = upload_zip(ui, ui.new_app(), "shapes.zip", archive.read_bytes(), size=48)
    assert not at.exception, at.exception
    labels = ("circle", "cross", "square", "stripe", "triangle")
    assert list(shown_counts(ui, at)) == list(labels)
    assert any(plain("labels.csv") in caption.value and "circle" in caption.value for caption in at.caption)
    # The random tag is off for labels.csv data; the label options add it.
    at.checkbox(key=ui.key(at, "data", "add_indoor")).check()
    at.button(key=ui.key(at, "data", "labels_apply")).click().run()
    config = state.data_config(at.session_state)
    assert config.add_indoor
    assert list(shown_counts(ui, at)) == [*labels, "indoor"]
    expected = datasets.load_splits(config)
    every = np.concatenate([expected.train.targets, expected.validation.targets, expected.test.targets])
    assert every[:, :5].sum(axis=0).tolist() == tags[:, [zips.SHAPES.index(name) for name in labels]].sum(0).tolist()

    ui.start_training(at, epochs=3)
    ui.wait_for_training(at)
    run = state.trained_run(at.session_state)
    assert run.label_names == (*labels, "indoor")
    at = ui.open_page(at, "evaluate")
    assert not at.exception
    y_score = predict.predict_proba(run.model, expected.test.images)
    thresholds = state.thresholds(run, at.session_state)
    report = metrics.classification_report_frame(
        expected.test.targets, y_score, threshold=thresholds, labels=run.label_names
    )
    pd.testing.assert_frame_equal(at.dataframe[0].value, report, atol=1e-6)
    heatmaps = [f for f in ui.plotly_figures(at) if f["data"] and f["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 6
    matrices = metrics.confusion_matrices(expected.test.targets, y_score, threshold=thresholds, labels=run.label_names)
    for figure, matrix in zip(heatmaps, matrices, strict=True):
        shown = np.array(
            [[int(cell.split("<br>")[1].replace(",", "")) for cell in row] for row in figure["data"][0]["text"]]
        )
        np.testing.assert_array_equal(shown, matrix)
    assert [figure["layout"]["title"]["text"] for figure in heatmaps] == list(run.label_names)

    at = ui.open_page(at, "predict")
    picture = zips.shapes_image(("circle", "stripe"), seed=999)
    at.file_uploader(key=ui.key(at, "predict", "images")).set_value([("new.jpg", picture, "image/jpeg")]).run()
    assert not at.exception
    table = next(frame.value for frame in at.dataframe if "file" in frame.value.columns).set_index("file")
    expected_row = predict.predict_proba(run.model, predict.to_model_input(predict.load_image(picture), run.image_size))
    np.testing.assert_allclose(table.loc["new.jpg", list(run.label_names)].to_numpy(float), expected_row[0], atol=1e-5)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (zips.class_members({"cats": 12}), "one class folder only"),
        ({**zips.class_members({"cats": 12}), **zips.class_members({"dogs": 4})}, "at least 10 readable images"),
        ({"a.jpg": b"x", "notes.txt": b"hello"}, "no class subfolders"),
    ],
    ids=["one-class", "too-few", "no-folders"],
)
def test_an_unusable_zip_gets_its_reason_and_the_session_keeps_working(ui, tmp_path, members, message):
    data = zips.write_zip(tmp_path / "bad.zip", members).read_bytes()
    at = upload_zip(ui, ui.new_app(), "bad.zip", data)
    assert not at.exception, at.exception
    assert any(message in error.value for error in at.error), [error.value for error in at.error]
    at.button(key=ui.key(at, "data", "fallback_demo")).click().run()
    assert state.data_config(at.session_state).source == "demo"
    assert not at.error


def test_a_file_that_is_not_a_zip_is_refused_with_a_message(ui):
    at = upload_zip(ui, ui.new_app(), "photos.zip", b"PK\x03\x04 certainly not a zip" * 10)
    assert not at.exception
    assert any("not a zip file" in error.value for error in at.error), [error.value for error in at.error]


def test_a_zip_that_would_not_fit_in_the_memory_budget_is_refused_and_the_data_stays(ui, two_class_bytes, monkeypatch):
    from app import jobs
    from mlcore import memory

    monkeypatch.setattr(jobs, "GUARD", memory.MemoryGuard(budget=memory.process_rss() + 10 * memory.MB))
    at = ui.new_app()
    before = state.data_config(at.session_state)
    upload_zip(ui, at, "My pets.zip", two_class_bytes)
    assert not at.exception
    assert any("Reading the images of My pets.zip would need about" in error.value for error in at.error)
    assert state.data_config(at.session_state) == before, "the session keeps its data"
    uploads = at.session_state.get(state.UPLOADS, None)
    assert uploads is None or not uploads.digests, "nothing written"


def test_a_link_cannot_carry_an_uploaded_zip():
    setup = address.decode({"data.source": "zip", "data.archive": "/etc/passwd", "train.epochs": "3"})
    assert setup.data_config is None
    assert setup.train_config.epochs == 3
    assert any("uploaded zip" in problem for problem in setup.problems)
    assert "data.archive" not in address.encode(DataConfig(source="zip", archive="/x/y.zip"), setup.train_config, {})


def test_uploads_are_private_to_a_session_and_deleted_with_it(tmp_path, two_class_bytes):
    first, second = uploaded_data.SessionUploads(), uploaded_data.SessionUploads()
    path = first.keep("../../evil name?.zip", two_class_bytes)
    assert path.parent.parent == first.folder
    assert path.name == "evil name_.zip"
    assert first.folder != second.folder
    assert not any(second.folder.iterdir())
    datasets.load_archive(path, 32)
    digest = datasets.archive_digest(path)
    cached = list(datasets.cfg.cache_dir().glob(f"zip-{digest[:32]}-*"))
    name = datasets.archive_cache_name(digest, 32)
    assert {f"{name}.u8", f"{name}.json"} <= {entry.name for entry in cached}  # the images and their metadata
    folder = first.folder
    del first
    gc.collect()
    assert not folder.exists()
    assert not any(path.exists() for path in cached)
    assert second.folder.exists()
    second.release()
    assert not second.folder.exists()


def test_a_zip_over_the_size_limit_is_refused_before_it_is_written(monkeypatch):
    limits = functools.partial(uploaded_data.archives.ZipLimits, max_archive_bytes=1000)
    monkeypatch.setattr(uploaded_data.archives, "ZipLimits", limits)
    uploads = uploaded_data.SessionUploads()
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("a/x.jpg", b"\xff" * 5000)
    with pytest.raises(uploaded_data.archives.ArchiveError, match="the limit is"):
        uploads.keep("big.zip", data.getvalue())
    assert not any(uploads.folder.iterdir())


def test_a_session_folder_unused_for_six_hours_is_swept_when_another_session_uploads():
    idle, active = uploaded_data.SessionUploads(), uploaded_data.SessionUploads()
    long_ago = time.time() - uploaded_data.STALE_SECONDS - 60
    os.utime(idle.folder, (long_ago, long_ago))
    os.utime(active.folder, (long_ago, long_ago))
    active.touch()  # every page run of a session marks its folder as used
    newcomer = uploaded_data.SessionUploads()
    assert not idle.folder.exists()
    assert active.folder.exists()
    assert newcomer.folder.exists()


def test_the_server_accepts_uploads_as_large_as_the_zip_limit():
    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 >= uploaded_data.archives.ZipLimits().max_archive_bytes
