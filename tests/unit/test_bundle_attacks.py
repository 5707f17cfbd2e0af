"""Hostile run bundles: every one ends in a BundleError with its reason, before Keras builds
anything and without inflating what it refuses."""

from __future__ import annotations

import contextlib
import io
import json
import tracemalloc
import zipfile

import keras
import pytest

from mlcore import store
from mlcore.model import build_model

MB = 2**20


def _functional_start() -> bytes:
    """The start of a functional model's config, naming its class as this Keras does."""
    inputs = keras.Input((1,))
    model_class = type(keras.Model(inputs, inputs))
    return f'{{"module": "{model_class.__module__}", "class_name": "{model_class.__name__}", '.encode()


FUNCTIONAL = _functional_start()


@pytest.fixture(scope="module")
def base() -> bytes:
    model = build_model((32, 32, 3), 3, architecture="seed")
    return store.bundle_bytes(model, {"labels": ["dog", "cat", "indoor"], "image_size": 32, "thresholds": {}})


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _with(base: bytes, *, meta=None, config=None, config_bytes: bytes | None = None) -> bytes:
    """The base bundle with run.json and/or the model's config.json changed."""
    outer = _members(base)
    if meta is not None:
        outer["run.json"] = json.dumps(meta(json.loads(outer["run.json"]))).encode()
    if config is not None or config_bytes is not None:
        inner = _members(outer["model.keras"])
        inner["config.json"] = (
            config_bytes if config_bytes is not None else json.dumps(config(json.loads(inner["config.json"]))).encode()
        )
        outer["model.keras"] = _zip(inner)
    return _zip(outer)


def _layer(config: dict, class_name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == class_name)


def test_the_untouched_bundle_loads(base):
    assert store.load_bundle(base).label_names == ("dog", "cat", "indoor")


def _lambda_carrier(config: dict) -> dict:
    """A Rescaling whose scale is a Lambda shared under an id that a 'Dense' entry reuses."""
    dense = _layer(config, "Dense")
    dense["shared_object_id"] = 4242
    rescale = _layer(config, "Rescaling")
    rescale["config"]["scale"] = {
        "module": "keras.layers", "class_name": "Lambda", "shared_object_id": 4242,
        "config": {"function": {"class_name": "__lambda__", "config": {"code": "x"}}},
    }  # fmt: skip
    return config


def _set(path: tuple, value):
    def change(config: dict) -> dict:
        node = _layer(config, path[0])
        for key in path[1:-1]:
            node = node[key]
        node[path[-1]] = value
        return config

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_lambda_carrier, "shares an object that our networks never share"),
        (_set(("Flatten", "module"), "keras.src.ops.numpy"), "'Flatten' \\(keras.src.ops.numpy\\)"),
        (_set(("Dense", "config", "units"), 150_000), "would hold 345,600,000 weights"),
        (_set(("Conv2D", "config", "kernel_size"), [99, 99]), "kernel_size 99"),
        (_set(("Dense", "build_config", "input_shape"), [None, 2_000_000]), "would hold 256,000,000 weights"),
        (_set(("InputLayer", "config", "batch_shape"), [None, 100_000, 100_000, 3]), "sides go up to 512"),
        (_set(("Dense", "registered_name"), "evil>Dense"), "'Dense' \\(keras.layers\\)"),
    ],
    ids=["shared-lambda", "op-not-layer", "huge-units", "huge-kernel", "huge-build-shape", "huge-input", "registered"],
)
def test_a_model_config_walking_around_the_allow_list_is_refused(base, change, message):
    with pytest.raises(store.BundleError, match=message):
        store.load_bundle(_with(base, config=change))


@pytest.mark.parametrize(
    ("config_bytes", "message"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "not valid JSON \\(RecursionError\\)|nested too deeply"),
        ('{"class_name": "Functional", "x": "caf\xe9"}'.encode("latin-1"), "not valid JSON \\(UnicodeDecodeError\\)"),
        (b"[1, 2, 3]", "is a 'list', not one of our networks"),
        (FUNCTIONAL + b'"config": {"layers": "not a list"}}', "Keras could not load"),
        (FUNCTIONAL + b'"config": null}', "Keras could not load"),
        (FUNCTIONAL + ('"a": ' + "[" * 60 + "1" + "]" * 60 + "}").encode(), "nested too deeply"),
    ],
    ids=["deep-json", "latin-1", "a-list", "layers-string", "config-null", "deep-lists"],
)  # fmt: skip
def test_a_malformed_model_config_ends_in_a_bundle_error(base, config_bytes, message):
    with pytest.raises(store.BundleError, match=message):
        store.load_bundle(_with(base, config_bytes=config_bytes))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image_size", 100_000, "image_size 100000; it must be a whole number from 16 to 512"),
        ("image_size", True, "image_size True"),
        ("thresholds", "0.5", "thresholds that are not numbers"),
        ("thresholds", [0.5], "thresholds that are not numbers"),
        ("thresholds", None, "thresholds that are not numbers"),
        ("thresholds", {"dog": float("nan")}, "thresholds that are not numbers"),
        ("thresholds", {"dog": 1.5}, "thresholds that are not numbers"),
        ("thresholds", {"wolf": 0.5}, "thresholds that are not numbers"),
        ("labels", ["x" * 65, "cat", "indoor"], "no valid list of labels"),
        ("labels", ["dog"] * 3, "no valid list of labels"),
        ("labels", [f"l{i}" for i in range(21)], "no valid list of labels"),
    ],
)
def test_run_json_values_out_of_range_are_refused(base, field, value, message):
    def change(meta: dict) -> dict:
        meta[field] = value
        return meta

    with pytest.raises(store.BundleError, match=message):
        store.load_bundle(_with(base, meta=change))


def _peak_mb(action) -> float:
    tracemalloc.start()
    try:
        with contextlib.suppress(store.BundleError):
            action()
        return tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


def test_a_config_that_inflates_to_a_gigabyte_is_refused_without_inflating_it(base):
    inner = _members(_members(base)["model.keras"])
    inner["config.json"] = bytes(1024 * MB)
    bomb = _members(base)
    bomb["model.keras"] = _zip(inner, zipfile.ZIP_DEFLATED)
    data = _zip(bomb)
    with pytest.raises(store.BundleError, match="config.json: larger than the per-file limit"):
        store.load_bundle(data)
    assert _peak_mb(lambda: store.load_bundle(data)) < 60  # the bundle itself is about 30 MB


def test_a_run_json_with_a_lying_size_stops_at_its_declared_size(base):
    """200 MB of zeros deflated as run.json, its headers declaring 1,000 bytes: reading stops
    there (this once reached 2 GB, and loaded)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("run.json", bytes(200 * MB), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("model.keras", _members(base)["model.keras"])
    data = bytearray(out.getvalue())
    local = data.find(b"PK\x03\x04")  # run.json's, written first
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02"))  # the outer directory's first entry
    for at, offset in ((local, 22), (central, 24)):  # their uncompressed size fields
        data[at + offset : at + offset + 4] = (1000).to_bytes(4, "little")
    with pytest.raises(store.BundleError, match="damaged"):
        store.load_bundle(bytes(data))
    assert _peak_mb(lambda: store.load_bundle(bytes(data))) < 60


@pytest.mark.parametrize(
    ("method", "message"),
    [(zipfile.ZIP_BZIP2, "compression method other than stored or deflated"),
     (zipfile.ZIP_LZMA, "compression method other than stored or deflated")],
)  # fmt: skip
def test_members_compressed_in_other_ways_are_refused(base, method, message):
    with pytest.raises(store.BundleError, match=message):
        store.load_bundle(_zip(_members(base), method))


def test_an_encrypted_member_is_refused(base):
    data = bytearray(_zip({"run.json": _members(base)["run.json"], "model.keras": _members(base)["model.keras"]}))
    local = data.find(b"PK\x03\x04")  # run.json's, written first
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02"))  # the outer directory's first entry
    data[local + 6] |= 0x01  # the "encrypted" flag, in both headers
    data[central + 8] |= 0x01
    with pytest.raises(store.BundleError, match="run.json: encrypted"):
        store.load_bundle(bytes(data))


def test_keras_refusals_are_reported_in_one_short_line(base):
    def change(config: dict) -> dict:
        config["config"]["layers"] = config["config"]["layers"][:2]  # the graph no longer ends at the output
        return config

    with pytest.raises(store.BundleError) as refused:
        store.load_bundle(_with(base, config=change))
    assert "\n" not in str(refused.value)
    assert len(str(refused.value)) < 420


def test_a_layer_built_for_a_huge_input_is_refused_before_keras_allocates_it(base):
    """Units within bounds, but built for 100,000 inputs: Keras took 6.5 GB before refusing."""

    def change(config: dict) -> dict:
        dense = _layer(config, "Dense")
        dense["config"]["units"] = 4096
        dense["build_config"] = {"input_shape": [None, 100_000]}
        return config

    with pytest.raises(store.BundleError, match="would hold 409,600,000 weights"):
        store.load_bundle(_with(base, config=change))


def test_a_weights_file_declaring_a_huge_dataset_is_refused_unread(base):
    """A gzip-chunked dataset of fill values: a few KB on disk, 3.6 GB once read (14 GB seen)."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as weights:
        weights.create_dataset("layers/dense/vars/0", shape=(30_000, 30_000), dtype="float32",
                               chunks=(1000, 1000), compression="gzip", fillvalue=0.5)  # fmt: skip
    outer = _members(base)
    inner = _members(outer["model.keras"])
    inner["model.weights.h5"] = buffer.getvalue()
    assert len(inner["model.weights.h5"]) < 100_000
    outer["model.keras"] = _zip(inner)
    data = _zip(outer)
    with pytest.raises(store.BundleError, match="weights declare more than 64 MB"):
        store.load_bundle(data)
    assert _peak_mb(lambda: store.load_bundle(data)) < 80


def test_json_constants_nan_and_infinity_are_refused(base):
    def change(config: dict) -> dict:
        _layer(config, "Rescaling")["config"]["scale"] = "NAN_HERE"
        return config

    data = _members(_with(base, config=change))
    inner = _members(data["model.keras"])
    inner["config.json"] = inner["config.json"].replace(b'"NAN_HERE"', b"NaN")
    data["model.keras"] = _zip(inner)
    with pytest.raises(store.BundleError, match="not valid JSON"):
        store.load_bundle(_zip(data))


@pytest.mark.parametrize(("source", "message"), [("/no/such/bundle.zip", "cannot be read"), (5, "not a int")])
def test_a_missing_file_or_a_wrong_type_is_a_bundle_error(source, message):
    with pytest.raises(store.BundleError, match=message):
        store.load_bundle(source)


@pytest.mark.parametrize("label", ["a\nb", "\x00", "\ud800"])
def test_labels_that_cannot_be_shown_are_refused(base, label):
    def change(meta: dict) -> dict:
        meta["labels"] = [label, "cat", "indoor"]
        return meta

    with pytest.raises(store.BundleError, match="no valid list of labels"):
        store.load_bundle(_with(base, meta=change))
