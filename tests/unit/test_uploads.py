"""Scoring uploads without Streamlit: the cache is a plain dict the caller owns."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import runs, uploads
from mlcore import model, predict

LABELS = ("dog", "cat", "indoor")
SIZE = 32


@pytest.fixture(scope="module")
def run():
    network = model.build_model((SIZE, SIZE, 3), len(LABELS), architecture="seed")
    return runs.Run(
        model_ref=runs.ModelRef(network), label_names=LABELS, image_size=SIZE, source="trained", title="t", metadata={}
    )


def photo(seed: int, size=(900, 600)) -> bytes:
    """A distinct noisy JPEG, larger than the thumbnails kept."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos():
    return [(f"photo{i:03d}.jpg", photo(i)) for i in range(120)]


def expected(run, data: bytes) -> np.ndarray:
    """One picture scored alone, decoded as the page decodes it (at the thumbnail's size or more)."""
    image = predict.load_image(data, draft=uploads.THUMBNAIL_PIXELS)
    return predict.predict_proba(run.model, predict.to_model_input(image, SIZE)[None])[0]


def test_more_files_than_the_cache_keeps_are_all_scored_in_batches(run, photos, monkeypatch):
    calls = []
    original = predict.predict_proba
    monkeypatch.setattr(predict, "predict_proba", lambda m, x, **k: calls.append(len(x)) or original(m, x, **k))
    files = [*photos, ("broken.jpg", b"not an image"), ("empty.png", b"")]
    progress = []
    cache: dict = {}

    results = uploads.score(run, files, cache, on_progress=lambda done, total: progress.append((done, total)))

    assert len(results) == len(files) > uploads.MAX_CACHED
    assert [r.name for r in results] == [name for name, _ in files]
    assert calls == [32, 32, 32, 24], "120 photos in batches of 32"
    assert progress[-1] == (122, 122)
    assert all(total == 122 for _, total in progress)
    for (_name, data), result in zip(photos[::17], results[::17], strict=True):
        assert result.probabilities == pytest.approx(dict(zip(LABELS, expected(run, data), strict=True)), abs=1e-5)
    assert "Not a supported image" in results[-2].error
    assert "empty" in results[-1].error
    thumbnails = [r.thumbnail for r in results if r.thumbnail]
    assert len(thumbnails) == 120
    assert max(map(len, thumbnails)) < 60_000, "small JPEG thumbnails only"
    assert {Image.open(io.BytesIO(t)).size for t in thumbnails} == {(uploads.THUMBNAIL_PIXELS,) * 2}
    assert results[0].size == (900, 600)


def test_files_are_scored_once_and_the_cache_keeps_the_current_upload(run, photos, monkeypatch):
    cache: dict = {}
    uploads.score(run, photos[:100], cache)
    calls = []
    original = predict.predict_proba
    monkeypatch.setattr(predict, "predict_proba", lambda m, x, **k: calls.append(len(x)) or original(m, x, **k))

    again = uploads.score(run, [("renamed.jpg", photos[5][1]), *photos[100:]], cache)

    assert calls == [20], "only the 20 new photos are predicted"
    assert again[0].name == "renamed.jpg"
    assert len(cache) == 21 + uploads.MAX_CACHED, "the current 21 plus the newest older results"
    import hashlib

    current = {(run.id, hashlib.sha256(data).hexdigest()) for _, data in [photos[5], *photos[100:]]}
    assert current <= set(cache)


def test_another_models_results_are_dropped(run, photos):
    cache: dict = {}
    uploads.score(run, photos[:3], cache)
    other = runs.Run(
        model_ref=runs.ModelRef(run.model), label_names=LABELS, image_size=SIZE, source="bundle", title="o", metadata={}
    )
    uploads.score(other, photos[:2], cache)
    assert {key[0] for key in cache} == {other.id}
    assert len(cache) == 2


def test_filter_and_order():
    thresholds = {"dog": 0.5, "cat": 0.5, "indoor": 0.5}
    dog = uploads.Scored("a", probabilities={"dog": 0.9, "cat": 0.1, "indoor": 0.2})
    both = uploads.Scored("b", probabilities={"dog": 0.6, "cat": 0.7, "indoor": 0.6})
    none = uploads.Scored("c", probabilities={"dog": 0.1, "cat": 0.2, "indoor": 0.3})
    bad = uploads.Scored("d", error="Not a supported image")
    results = [dog, both, none, bad]
    pick = lambda shown: [r.name for r in results if uploads.matches(r, shown, thresholds)]  # noqa: E731
    assert pick({"cat"}) == ["b"]
    assert pick({"dog"}) == ["a", "b"]
    assert pick({uploads.NONE_LABEL, "refused"}) == ["c", "d"]
    assert [r.name for r in uploads.order(results, "cat")] == ["b", "c", "a", "d"]
    assert [r.name for r in uploads.order(results, None)] == ["a", "b", "c", "d"]


def test_a_file_object_is_read_whole_every_time(run, photos):
    """A plain file object (no ``getvalue``) is hashed and decoded from its start both times."""
    cache: dict = {}
    [result] = uploads.score(run, [("disk.jpg", io.BufferedReader(io.BytesIO(photos[0][1])))], cache)
    assert result.error is None
    assert result.probabilities == pytest.approx(dict(zip(LABELS, expected(run, photos[0][1]), strict=True)), abs=1e-5)


def test_a_file_that_breaks_the_decoder_is_refused_alone(run, photos):
    entries = [(0x0111, 12, 1, b"\0\0\0\0"), (0x0112, 3, 1, b"\x00\x06\x00\x00")]
    bad = b"II*\x00" + (8).to_bytes(4, "little") + len(entries).to_bytes(2, "little")
    results = uploads.score(run, [photos[0], ("odd.tif", bad), ("junk.png", bytes(range(256)))], {})
    assert results[0].error is None
    assert results[1].error
    assert results[2].error


def test_a_card_explanation_is_the_heatmap_over_the_whole_picture(run, photos):
    from mlcore import explain

    data = photos[0][1]
    image = predict.load_image(data, draft=uploads.THUMBNAIL_PIXELS)  # as the page decodes it
    small = image.copy()
    small.thumbnail((uploads.THUMBNAIL_PIXELS,) * 2)
    plain = np.asarray(Image.open(io.BytesIO(uploads.thumbnail_jpeg(small))), dtype=int)
    for index in range(len(LABELS)):
        card = Image.open(io.BytesIO(uploads.explanation_jpeg(run, data, index)))
        assert card.size == (uploads.THUMBNAIL_PIXELS,) * 2
        heat = explain.gradcam(run.model, predict.to_model_input(image, SIZE), index)
        overlaid = Image.fromarray(explain.overlay(small, heat))
        expected = np.asarray(Image.open(io.BytesIO(uploads.thumbnail_jpeg(overlaid))), dtype=int)
        assert np.abs(np.asarray(card, dtype=int) - expected).mean() < 1.0, "the label's heatmap over the photo"
        assert np.abs(np.asarray(card, dtype=int) - plain).mean() > 5.0, "not the plain thumbnail"
