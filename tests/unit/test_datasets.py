import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlcore import datasets
from mlcore.config import DataConfig


def _write_folder(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (40 + i, 60, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}.{i}.jpg", quality=90)
    (root / "dogs" / "dogs.broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "cats" / "notes.txt").write_text("not an image, not counted")
    return root


def test_folder_loads_and_counts_the_corrupt_file(tmp_path):
    root = _write_folder(tmp_path / "pets")
    image_set = datasets.load_folder(root, image_size=32)
    assert image_set.images.shape == (12, 32, 32, 3)
    assert image_set.images.dtype == np.uint8
    assert image_set.class_names == ("cats", "dogs")
    assert np.bincount(image_set.class_index).tolist() == [6, 6]
    assert image_set.skipped == 1
    assert image_set.skipped_files == ("dogs/dogs.broken.jpg",)


def test_decoded_pixels_match_a_plain_resize(tmp_path):
    pixels = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    (tmp_path / "a").mkdir()
    Image.fromarray(pixels).save(tmp_path / "a" / "x.png")
    loaded = datasets.load_folder(tmp_path, image_size=16).images[0]
    expected = np.asarray(Image.fromarray(pixels).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(loaded, expected)


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    root = _write_folder(tmp_path / "pets")
    calls = []
    real_decode = datasets.decode_file
    monkeypatch.setattr(datasets, "decode_file", lambda *a: calls.append(a) or real_decode(*a))
    first = datasets.load_folder(root, image_size=32)
    assert len(calls) == 13
    second = datasets.load_folder(root, image_size=32)
    assert len(calls) == 13  # served from the disk cache
    np.testing.assert_array_equal(first.images, second.images)
    assert second.skipped_files == first.skipped_files
    assert second.keys == first.keys
    # Changing one file's content (and so its size and mtime) invalidates the cache.
    changed = root / "cats" / "cats.0.jpg"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    third = datasets.load_folder(root, image_size=32)
    assert len(calls) == 26
    assert third.images[0].max() == 0
    # A different image size is a different cache entry.
    datasets.load_folder(root, image_size=24)
    assert len(calls) == 39


def test_damaged_cache_is_rebuilt(tmp_path):
    root = _write_folder(tmp_path / "pets")
    datasets.load_folder(root, image_size=32)
    cache = Path(os.environ["MLCORE_CACHE_DIR"])
    for entry in cache.glob("*.npy"):
        entry.write_bytes(b"garbage")
    assert datasets.load_folder(root, image_size=32).images.shape == (12, 32, 32, 3)


def test_stratified_subset_is_seeded_and_balanced():
    class_index = np.array([0] * 80 + [1] * 20)
    image_set = datasets.ImageSet(
        np.zeros((100, 2, 2, 3), np.uint8), class_index, ("cats", "dogs"), tuple(str(i) for i in range(100))
    )
    subset = datasets.stratified_subset(image_set, 50, seed=1)
    assert np.bincount(subset.class_index).tolist() == [40, 10]
    assert subset.keys == datasets.stratified_subset(image_set, 50, seed=1).keys
    assert subset.keys != datasets.stratified_subset(image_set, 50, seed=2).keys


def test_missing_folder_and_empty_folder_messages(tmp_path):
    with pytest.raises(datasets.DatasetUnavailable, match="not found"):
        datasets.load_folder(tmp_path / "nope")
    with pytest.raises(datasets.DatasetUnavailable, match="no class subfolders"):
        datasets.load_folder(tmp_path)


def _fake_extracted(root: Path) -> Path:
    for split, classes in {"train": ("cats", "dogs"), "validation": ("cats", "dogs")}.items():
        for name in classes:
            (root / split / name).mkdir(parents=True)
    return root


def test_resolver_prefers_the_data_dir_then_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("MLCORE_DATA_DIR", raising=False)
    assert datasets.find_real_dataset() is None
    cached = _fake_extracted(
        tmp_path / "keras" / "datasets" / "cats_and_dogs_filtered_extracted" / "cats_and_dogs_filtered"
    )
    assert datasets.find_real_dataset() == cached
    explicit = _fake_extracted(tmp_path / "mine" / "cats_and_dogs_filtered")
    monkeypatch.setenv("MLCORE_DATA_DIR", str(tmp_path / "mine"))
    assert datasets.find_real_dataset() == explicit
    # Found without any download attempt.
    monkeypatch.setattr(datasets, "download_real_dataset", lambda: pytest.fail("must not download"))
    assert datasets.resolve_real_dataset() == explicit


def test_offline_download_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("MLCORE_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "check_reachable", lambda url: None)  # the failure comes from the download
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(datasets.DatasetUnavailable) as error:
        datasets.resolve_real_dataset()
    message = str(error.value)
    assert "offline" in message
    assert "MLCORE_DATA_DIR" in message
    assert "demo set" in message


def test_a_hanging_network_fails_fast_with_the_alternatives(monkeypatch):
    import threading
    import urllib.request

    release, finished = threading.Event(), threading.Event()

    def hang(*args, **kwargs):
        release.wait(120)  # a name lookup that does not answer
        finished.set()

    monkeypatch.setattr(urllib.request, "urlopen", hang)
    with pytest.raises(datasets.DatasetUnavailable, match="No answer from .* within 1 s.*demo set"):
        datasets.check_reachable("https://example.invalid/data.zip", timeout=1)
    assert not finished.is_set()  # it gave up while the lookup was still hanging
    release.set()


def test_an_unreachable_host_is_reported(monkeypatch):
    import urllib.error
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(datasets.DatasetUnavailable, match="Could not reach .*name resolution.*MLCORE_DATA_DIR"):
        datasets.check_reachable("https://example.invalid/data.zip", timeout=1)


def test_truncated_download_is_deleted(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(datasets, "check_reachable", lambda url: None)
    archive = tmp_path / "keras" / "datasets" / "cats_and_dogs_filtered.zip"
    archive.parent.mkdir(parents=True)
    import keras

    def truncated(*args, **kwargs):
        archive.write_bytes(b"PK" + b"\0" * 1000)
        return str(archive)

    monkeypatch.setattr(keras.utils, "get_file", truncated)
    with pytest.raises(datasets.DatasetUnavailable, match="1,002 bytes, expected 68,606,236"):
        datasets.download_real_dataset()
    assert not archive.exists()


def test_demo_set_is_deterministic_balanced_and_synthetic():
    first = datasets.make_demo_set(20, image_size=48, seed=5)
    again = datasets.make_demo_set(20, image_size=48, seed=5, use_cache=False)
    other = datasets.make_demo_set(20, image_size=48, seed=6)
    assert first.images.shape == (20, 48, 48, 3)
    assert first.images.dtype == np.uint8
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    assert np.bincount(first.class_index).tolist() == [10, 10]
    assert first.synthetic
    assert "synthetic" in first.origin
    assert np.asarray(first.images).std() > 20  # real pictures, not flat colour


def test_load_splits_on_demo_source_has_disjoint_labelled_splits():
    config = DataConfig(source="demo", demo_images=100, image_size=32, n_images=60, indoor_probability=0.4)
    splits = datasets.load_splits(config)
    assert splits.sizes() == {"train": 54, "validation": 6, "test": 20}
    assert splits.label_names == ("dog", "cat", "indoor")
    assert splits.synthetic
    keys = [set(part.keys) for part in (splits.train, splits.validation, splits.test)]
    assert not (keys[0] & keys[1])
    assert not (keys[0] & keys[2])
    assert not (keys[1] & keys[2])
    for part in (splits.train, splits.validation, splits.test):
        assert np.all(part.targets[:, 0] + part.targets[:, 1] == 1)


def test_load_splits_on_a_folder_lists_each_skipped_file_once(tmp_path):
    root = _write_folder(tmp_path / "pets", per_class=10)
    splits = datasets.load_splits(DataConfig(source="folder", folder=str(root), image_size=32))
    assert splits.skipped_files == ("dogs/dogs.broken.jpg",)
    assert sum(splits.sizes().values()) == 20
