"""The Data page: settings through the form, what it shows, and every way data can be missing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app import state
from app.widgets import plain
from mlcore import datasets
from mlcore.config import DataConfig

pytestmark = pytest.mark.timeout(600)


def test_demo_settings_show_the_splits_counts_and_tagged_samples(ui):
    at = ui.new_app()
    ui.apply_data_settings(at, source="demo", count=120, size=64, indoor=0.3, seed=7)

    assert not at.exception
    config = state.data_config(at.session_state)
    assert config == DataConfig(source="demo", demo_images=120, image_size=64, indoor_probability=0.3, seed=7)
    expected = datasets.load_splits(config)
    sizes = ui.figure_titled(at, "Images per split")["data"][0]
    assert dict(zip(sizes["x"], sizes["y"], strict=True)) == expected.sizes()
    counts = ui.figure_titled(at, "Images tagged with each label")["data"]
    assert [trace["name"] for trace in counts] == list(expected.label_names)
    for column, trace in enumerate(counts):
        split_parts = {"train": expected.train, "validation": expected.validation, "test": expected.test}
        assert trace["y"] == [int(split_parts[name].targets[:, column].sum()) for name in trace["x"]]
    samples = at.image[0]
    assert len(samples.value) == 16
    assert all(caption in {"dog", "cat", "dog · indoor", "cat · indoor"} for caption in samples.captions)
    assert any("SYNTHETIC" in warning.value for warning in at.warning)
    assert any("SYNTHETIC" in caption.value and "120" in caption.value for caption in at.sidebar.caption)


def test_data_settings_survive_a_page_switch_and_show_in_the_sidebar(ui):
    at = ui.new_app()
    ui.apply_data_settings(at, source="demo", count=160, size=48, indoor=0.7)
    ui.open_page(at, "predict")
    assert any("SYNTHETIC" in caption.value and "160" in caption.value for caption in at.sidebar.caption)

    ui.open_page(at, "data")
    assert at.radio(key=ui.key(at, "data", "source")).value == "demo"
    assert at.number_input(key=ui.key(at, "data", "count")).value == 160
    assert at.select_slider(key=ui.key(at, "data", "size")).value == 48
    assert at.slider(key=ui.key(at, "data", "indoor")).value == pytest.approx(0.7)


def test_real_dataset_page_uses_the_official_split(ui):
    if datasets.find_real_dataset() is None:
        pytest.skip("the real cats_and_dogs_filtered is not under MLCORE_DATA_DIR or Keras' cache")
    at = ui.new_app()
    ui.apply_data_settings(at, source="real", count=200, size=32)

    assert not at.exception
    assert not any("SYNTHETIC" in warning.value for warning in at.warning)
    sizes = ui.figure_titled(at, "Images per split")["data"][0]
    shown = dict(zip(sizes["x"], sizes["y"], strict=True))
    assert shown["train"] + shown["validation"] == 200
    assert shown["test"] == 1000  # the official validation/ folder, never cut


def test_missing_real_dataset_offers_download_and_one_click_demo(ui, monkeypatch, tmp_path):
    monkeypatch.setenv("MLCORE_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    at = ui.new_app()
    assert state.data_config(at.session_state).source == "demo"
    assert any("No local copy" in info.value for info in at.info)

    ui.apply_data_settings(at, source="real", count=200, size=64)
    assert any("not on this machine" in warning.value for warning in at.warning)

    def offline():
        raise datasets.DatasetUnavailable("Could not download cats_and_dogs_filtered (offline).")

    monkeypatch.setattr(datasets, "download_real_dataset", offline)
    at.button(key=ui.key(at, "data", "download")).click().run()
    assert not at.exception
    assert any("offline" in error.value for error in at.error)

    at.button(key=ui.key(at, "data", "use_demo")).click().run()
    assert state.data_config(at.session_state).source == "demo"
    assert at.get("plotly_chart"), "the demo set is shown right away"


def test_a_folder_that_does_not_exist_is_an_error_message(ui, tmp_path):
    at = ui.new_app()
    ui.apply_data_settings(at, source="folder", folder=str(tmp_path / "nowhere"), count=100, size=64)
    assert not at.exception
    assert any("Folder not found" in error.value for error in at.error)

    ui.apply_data_settings(at, source="folder", folder="", count=100, size=64)
    assert any("needs a folder path" in error.value for error in at.error)


def test_a_local_folder_with_unreadable_files_says_so(ui, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for index in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / name / f"{index}.png")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not a jpeg")
    at = ui.new_app()
    ui.apply_data_settings(at, source="folder", folder=str(tmp_path), count=100, size=32)

    assert not at.exception
    assert any("1 unreadable" in warning.value and plain("dogs/broken.jpg") in warning.value for warning in at.warning)
