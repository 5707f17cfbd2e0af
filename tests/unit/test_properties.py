"""Property-based tests of the readers of untrusted bytes: the image loader, the run-bundle reader and
the zip reader. Whatever the bytes, each either returns a well-formed result or raises its own error
type with a message a person can read; nothing else escapes.

Hypothesis is derandomized and keeps no example database, so every run (CI included) makes the same
draws in the same order; the seed files are built the same every time, except the run bundle, whose
zip and Keras metadata carry the time it was saved.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlcore import archives, predict, store

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "derandomize": True,
    "database": None,
}
MAX_MESSAGE_CHARS = 1000


def _assert_readable(error: Exception) -> None:
    """An error meant for a person: some text, bounded, and no Python traceback in it."""
    message = str(error)
    assert message.strip(), f"{type(error).__name__} with an empty message"
    assert "Traceback (most recent call last)" not in message, message
    assert len(message) <= MAX_MESSAGE_CHARS, f"a {len(message):,}-character message: {message[:200]}..."


# --- mutations -------------------------------------------------------------------------------------------


def _position(draw, length: int, *, hot: int = 64) -> int:
    """A byte position, often in the first and last ``hot`` bytes, where headers and indexes live."""
    last = max(0, length - 1)
    return draw(
        st.one_of(
            st.integers(0, min(hot - 1, last)),
            st.integers(max(0, last - hot + 1), last),
            st.integers(0, last),
        )
    )


@st.composite
def mutated(draw, seeds: dict[str, bytes], *, hot: int = 64, max_steps: int = 4) -> tuple[str, bytes]:
    """One seed file with 1 to ``max_steps`` drawn edits: flip or overwrite a byte, truncate,
    insert drawn bytes, copy a slice elsewhere (a duplicated chunk or marker), or shift a
    little-endian number (a size, an offset or a count in a header)."""
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    for _ in range(draw(st.integers(1, max_steps))):
        step = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "duplicate", "add"]))
        at = _position(draw, len(data), hot=hot)
        if step == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif step == "overwrite":
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]) | st.integers(0, 255))
        elif step == "truncate":
            data = data[:at]
        elif step == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif step == "add":  # shift a little-endian number (a length, an offset, a count) a little
            width = min(draw(st.sampled_from([2, 4])), len(data) - at)
            value = int.from_bytes(data[at : at + width], "little") + draw(st.integers(-512, 512))
            data[at : at + width] = (value % 256**width).to_bytes(width, "little")
        else:
            piece = data[at : at + draw(st.integers(1, 256))]
            to = _position(draw, len(data), hot=hot)
            data[to:to] = piece
        if not data:
            break
    return name, bytes(data)


# --- images ----------------------------------------------------------------------------------------------


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@functools.cache
def image_seeds() -> dict[str, bytes]:
    """Small valid files of every accepted format (64x48), a few with the features that take other paths:
    progressive scans, EXIF rotation, transparency, a palette, compressed TIFF, animation, MPO."""
    y, x = np.mgrid[0:48, 0:64]
    rgb = Image.fromarray(np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8))
    exif = Image.Exif()
    exif[predict.ORIENTATION_TAG] = 6
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray((x * 4).astype(np.uint8)))
    seeds = {
        "jpeg": _encoded(rgb, "JPEG", quality=85, exif=exif),
        "jpeg-progressive": _encoded(rgb, "JPEG", quality=85, progressive=True),
        "png": _encoded(rgb, "PNG"),
        "png-rgba": _encoded(rgba, "PNG"),
        "gif": _encoded(rgb.quantize(32), "GIF", transparency=0),
        "gif-animated": _encoded(rgb.quantize(32), "GIF", save_all=True, append_images=[rgb.rotate(90).quantize(32)]),
        "webp": _encoded(rgb, "WEBP", quality=80),
        "webp-lossless": _encoded(rgba, "WEBP", lossless=True),
        "bmp": _encoded(rgb, "BMP"),
        "tiff": _encoded(rgb, "TIFF"),
        "tiff-deflate": _encoded(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "mpo": _encoded(rgb, "MPO", save_all=True, append_images=[rgb.rotate(180)]),
    }
    for name, data in seeds.items():  # each seed is itself a good image
        assert predict.load_image(data, draft=128).size in ((64, 48), (48, 64)), name
    return seeds


def _assert_image_outcome(data: bytes, draft: int | None) -> None:
    """Either a whole upright RGB picture no larger than the file's own, or an ImageError."""
    try:
        image, original = predict.open_image(data, draft=draft)
    except predict.ImageError as error:
        _assert_readable(error)
        return
    assert image.mode == "RGB"
    assert image.width > 0
    assert image.height > 0
    assert np.asarray(image).shape == (image.height, image.width, 3)
    assert min(original) > 0
    # Draft and reduction only shrink; an EXIF rotation may swap the sides.
    assert max(image.size) <= max(original), (image.size, original)
    assert min(image.size) <= min(original), (image.size, original)


MAGIC = [  # JPEG, PNG, GIF, WebP, BMP, TIFF (both byte orders)
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
]


@settings(max_examples=300, **SETTINGS)
@given(data=st.binary(max_size=64 * 1024))
def test_random_bytes_are_an_image_error_or_an_image(data):
    try:
        image = predict.load_image(data, draft=128)
    except predict.ImageError as error:
        _assert_readable(error)
    else:
        assert image.mode == "RGB"
        assert image.width > 0
        assert image.height > 0


@settings(max_examples=300, **SETTINGS)
@given(magic=st.sampled_from(MAGIC), rest=st.binary(max_size=4096))
def test_random_bytes_behind_a_format_signature_are_an_image_error_or_an_image(magic, rest):
    """Past the signature, so that each format's own parser reads the random part."""
    _assert_image_outcome(magic + rest, 128)


@settings(max_examples=700, **SETTINGS)
@given(case=mutated(image_seeds()), draft=st.sampled_from([128, 256, None]))
def test_a_damaged_real_image_is_an_image_error_or_an_upright_rgb_picture(case, draft):
    _, data = case
    _assert_image_outcome(data, draft)


# --- run bundles -------------------------------------------------------------------------------------------

LABELS, IMAGE_SIZE = ["dog", "cat", "indoor"], 32


@pytest.fixture(scope="module")
def bundle() -> bytes:
    from mlcore.model import build_model  # deferred: TensorFlow takes seconds to import

    model = build_model((IMAGE_SIZE, IMAGE_SIZE, 3), len(LABELS), architecture="seed")
    return store.bundle_bytes(model, {"labels": LABELS, "image_size": IMAGE_SIZE, "thresholds": {"dog": 0.4}})


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _assert_bundle_outcome(data: bytes) -> store.RunBundle | None:
    """``read_metadata`` and ``load_bundle`` end in a BundleError or a bundle whose every value
    the pages use is in range, and they agree: a run.json that cannot be read never loads."""
    try:
        meta = store.read_metadata(data)
    except store.BundleError as error:
        _assert_readable(error)
        meta = None
    else:
        labels = meta["labels"]
        assert isinstance(labels, list)
        assert 0 < len(labels) <= store.MAX_LABEL_COUNT
        assert all(isinstance(label, str) and label for label in labels)
        assert store.IMAGE_SIZE_RANGE[0] <= meta["image_size"] <= store.IMAGE_SIZE_RANGE[1]
    try:
        loaded = store.load_bundle(data)
    except store.BundleError as error:
        _assert_readable(error)
        return None
    assert meta is not None, "load_bundle took a bundle whose run.json read_metadata refuses"
    assert loaded.metadata == meta
    assert loaded.label_names == tuple(meta["labels"])
    assert loaded.image_size == meta["image_size"]
    assert set(loaded.thresholds) <= set(loaded.label_names)
    assert all(0.0 <= value <= 1.0 for value in loaded.thresholds.values())
    assert tuple(loaded.model.input_shape) == (None, loaded.image_size, loaded.image_size, 3)
    assert tuple(loaded.model.output_shape) == (None, len(loaded.label_names))
    return loaded


@settings(max_examples=150, **SETTINGS)
@given(data=st.one_of(st.binary(max_size=8192), st.binary(max_size=4096).map(lambda rest: b"PK\x03\x04" + rest)))
def test_random_bytes_are_not_a_bundle(data):
    for reader in (store.read_metadata, store.load_bundle):
        with pytest.raises(store.BundleError) as caught:
            reader(data)
        _assert_readable(caught.value)


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_a_damaged_bundle_is_a_bundle_error_or_a_whole_bundle(bundle, data):
    _, damaged = data.draw(mutated({"bundle": bundle}, hot=4096))
    _assert_bundle_outcome(damaged)


def test_a_bundle_whose_end_record_moves_its_directory_is_a_bundle_error(bundle):
    """The damage the zip property below found, through the bundle reader: a ValueError, not a
    BundleError, escapes read_metadata and load_bundle (and the Predict page catches BundleError)."""
    _assert_bundle_outcome(directory_moved(bundle, 100))


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: json writes them as bare words
    | st.text(max_size=24)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=24,
)
# Values near what run.json holds, so that some drawn ones are valid and the checks after them run.
RUN_JSON_VALUES = {
    "format": st.sampled_from([store.BUNDLE_FORMAT, "mlcore-run ", "MLCORE-RUN"]) | JSON,
    "version": st.sampled_from([1, 1.0, True, "1", 2, 0]) | JSON,
    "labels": st.lists(st.text(max_size=70), max_size=24) | st.lists(st.sampled_from(LABELS), max_size=4) | JSON,
    "image_size": st.integers(-1, 1000) | st.sampled_from([32, 32.0, "32", True]) | JSON,
    "thresholds": st.dictionaries(st.sampled_from([*LABELS, "wolf"]), st.floats() | st.integers(-1, 2) | JSON) | JSON,
    "history": JSON,
    "an unknown key": JSON,
}


@settings(max_examples=80, **SETTINGS)
@given(
    changes=st.dictionaries(st.sampled_from(sorted(RUN_JSON_VALUES)), st.just(None), min_size=1, max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({key: RUN_JSON_VALUES[key] for key in keys})
    ),
    deleted=st.lists(st.sampled_from(["format", "version", "labels", "image_size", "thresholds"]), max_size=2),
)
def test_a_bundle_with_drawn_run_json_values_is_a_bundle_error_or_loads_with_them(bundle, changes, deleted):
    members = _members(bundle)
    meta = json.loads(members["run.json"])
    meta.update(changes)
    for key in deleted:
        meta.pop(key, None)
    members["run.json"] = json.dumps(meta).encode()
    loaded = _assert_bundle_outcome(_zip(members))
    if loaded is not None:
        # The network untouched: only a run.json that keeps its three labels and its 32 px fits it.
        assert len(loaded.label_names) == len(LABELS)
        assert loaded.image_size == IMAGE_SIZE


@settings(max_examples=60, **SETTINGS)
@given(run_json=st.one_of(JSON, st.dictionaries(st.text(max_size=12), JSON, max_size=8)).map(json.dumps))
def test_a_bundle_whose_run_json_is_any_json_is_a_bundle_error(bundle, run_json):
    members = _members(bundle)
    members["run.json"] = run_json.encode()
    with pytest.raises(store.BundleError) as caught:  # no format tag: never a bundle of ours
        store.read_metadata(_zip(members))
    _assert_readable(caught.value)


def _paths(node, prefix=()) -> list[tuple]:
    """Every place in a JSON tree, as the keys and indices that lead to it."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@functools.cache
def _config_of(bundle: bytes) -> tuple[dict[str, bytes], dict[str, bytes], str]:
    outer = _members(bundle)
    inner = _members(outer["model.keras"])
    return outer, inner, inner["config.json"].decode()


NEAR_CONFIG_VALUES = (
    st.integers(-2, 5000)
    | st.sampled_from([None, [], {}, "", "relu", "Dense", "keras.layers", "float32", [None, 32, 32, 3], 3, 32])
    | JSON
)


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_a_bundle_with_a_drawn_model_config_is_a_bundle_error_or_loads(bundle, data):
    outer, inner, text = _config_of(bundle)
    config = json.loads(text)
    places = _paths(config)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        place = data.draw(st.sampled_from(places[1:]), label="place")
        parent = config
        try:
            for step in place[:-1]:
                parent = parent[step]
            parent[place[-1]]  # noqa: B018 - an earlier edit may have moved what this place named
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(parent, dict) and data.draw(st.booleans(), label="delete"):
            del parent[place[-1]]
        else:
            parent[place[-1]] = data.draw(NEAR_CONFIG_VALUES, label="value")
    model = _zip({**inner, "config.json": json.dumps(config).encode()})
    _assert_bundle_outcome(_zip({**outer, "model.keras": model}))


# --- zips --------------------------------------------------------------------------------------------------


@functools.cache
def zip_seed() -> bytes:
    """A small dataset zip: deflated and stored members, folders, a labels file."""
    y, x = np.mgrid[0:16, 0:16]
    picture = _encoded(Image.fromarray(np.stack([x * 16, y * 16, x * y], -1).astype(np.uint8)), "PNG")
    members = [
        ("data/cats/a.png", picture, zipfile.ZIP_DEFLATED),
        ("data/dogs/b.png", picture, zipfile.ZIP_STORED),
        ("data/labels.csv", b"file,label\ncats/a.png,cat\n" * 40, zipfile.ZIP_DEFLATED),
        ("data/dogs/", b"", zipfile.ZIP_STORED),
    ]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data, method in members:  # a fixed date: the same bytes, and examples, every run
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6)), data, compress_type=method)
    return out.getvalue()


def directory_moved(data: bytes, by: int) -> bytes:
    """The zip with its end record saying the central directory starts ``by`` bytes later than it does."""
    at = data.rfind(b"PK\x05\x06") + 16  # the directory's offset, after signature, four counts and its size
    offset = int.from_bytes(data[at : at + 4], "little")
    return data[:at] + (offset + by).to_bytes(4, "little") + data[at + 4 :]


def _assert_zip_outcome(data: bytes) -> None:
    """Opening and listing end in an ArchiveError or members; reading each gives its declared bytes
    (length and CRC), or a BadZipFile for that member alone, or an ArchiveError for the whole zip."""
    limits = archives.ZipLimits()
    try:
        with archives.open_zip(io.BytesIO(data), limits) as archive:
            listing = archives.list_members(archive, limits)
            for member, result in archives.Reader(archive, limits).read_all(listing.members):
                if isinstance(result, Exception):
                    assert isinstance(result, zipfile.BadZipFile), repr(result)
                    _assert_readable(result)
                else:
                    assert len(result) == member.info.file_size
                    assert zlib.crc32(result) == member.info.CRC
    except archives.ArchiveError as error:
        _assert_readable(error)


@settings(max_examples=150, **SETTINGS)
@given(data=st.one_of(st.binary(max_size=4096), st.binary(max_size=2048).map(lambda rest: rest + b"PK\x05\x06")))
def test_random_bytes_are_an_archive_error(data):
    _assert_zip_outcome(data)


@settings(max_examples=400, **SETTINGS)
@given(case=mutated({"zip": zip_seed()}, hot=256, max_steps=6))
# Found by this test: zipfile takes a directory that starts earlier than the end record says for bytes
# prepended to the zip, and moves every member's offset back by as much, here to before the zip's start.
# list_members then seeks to a negative offset and a plain ValueError escapes (from a file on disk: OSError).
@example(case=("zip", directory_moved(zip_seed(), 100)))
def test_a_damaged_zip_is_an_archive_error_or_members_read_whole(case):
    _assert_zip_outcome(case[1])
