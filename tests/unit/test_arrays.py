"""Images on disk read a batch at a time: the same pixels as in memory, and memory that does
not grow with the dataset."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from mlcore import arrays, datasets, train

MB = 2**20


def _file(tmp_path, count=50, shape=(8, 8, 3)):
    pixels = np.random.default_rng(0).integers(0, 256, (count, *shape), dtype=np.uint8)
    writer = arrays.ImageWriter(tmp_path / "images.u8", shape)
    for start in range(0, count, 7):  # written in uneven chunks
        writer.append(pixels[start : start + 7])
    return writer.finish(), pixels


def test_a_view_reads_the_same_pixels_as_the_array_it_was_written_from(tmp_path):
    stored, pixels = _file(tmp_path)
    view = arrays.Images(stored)
    assert view.shape == (50, 8, 8, 3)
    assert view.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(view), pixels)
    np.testing.assert_array_equal(view[7], pixels[7])
    np.testing.assert_array_equal(view[-1], pixels[-1])
    np.testing.assert_array_equal(view[10:20], pixels[10:20])
    rows = np.array([3, 4, 5, 40, 2, 2, 49])  # runs, a jump back, a repeat
    np.testing.assert_array_equal(view[rows], pixels[rows])
    subset = view.take(np.array([1, 3, 5, 7, 9])).take(np.array([4, 0]))  # views of views
    np.testing.assert_array_equal(np.asarray(subset), pixels[[9, 1]])
    again = pickle.loads(pickle.dumps(subset))
    np.testing.assert_array_equal(np.asarray(again), pixels[[9, 1]])


def test_a_truncated_or_resized_file_is_noticed(tmp_path):
    stored, _ = _file(tmp_path)
    with pytest.raises(ValueError, match="not 51 images"):
        arrays.ImageFile(stored.path, 51, (8, 8, 3))
    view = arrays.Images(stored)
    with open(stored.path, "r+b") as stream:
        stream.truncate(stored.row_bytes * 10)
    with pytest.raises(OSError, match="ended early"):
        view[45]
    with pytest.raises(IndexError):
        arrays.Images(stored).take(np.array([50]))[0]


def _folder(root, count, size=64):
    rng = np.random.default_rng(1)
    for index in range(count):
        folder = root / ("cats" if index % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return root


def _peak_mb(action) -> float:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


def test_decoding_a_folder_and_an_epoch_of_batches_take_memory_flat_in_its_size(tmp_path):
    """1,000 images of 64 px are 12 MB of pixels: decoding them into the cache, and gathering
    every batch of an epoch from it, each stay within a few chunks' worth."""
    root = _folder(tmp_path / "pets", 1000)
    loaded = {}
    decode_peak = _peak_mb(lambda: loaded.setdefault("set", datasets.load_folder(root, 64)))
    image_set = loaded["set"]
    assert len(image_set) == 1000
    assert decode_peak < 5, decode_peak  # a 64-image chunk is 0.8 MB; a list of every image was 12 MB
    targets = np.zeros((1000, 3), np.float32)

    def epoch_from_the_cache():
        cached = datasets.load_folder(root, 64)  # nothing is read until a batch is gathered
        assert isinstance(cached.images.base, arrays.ImageFile)
        pipeline = train.batches(cached.images, targets, 32, shuffle_seed=0)
        seen = sum(len(x) for x, _ in pipeline.as_numpy_iterator())
        assert seen == 1000

    assert _peak_mb(epoch_from_the_cache) < 5  # a few batches at a time, never the 12 MB set
    np.testing.assert_array_equal(datasets.load_folder(root, 64).images[[0, 999]], image_set.images[[0, 999]])
