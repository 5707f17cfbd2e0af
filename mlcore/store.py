"""Run bundles: a trained model plus everything needed to trust and reuse it.

A bundle is one zip file holding ``model.keras`` and ``run.json`` (labels,
configs, thresholds, history, metrics, library versions). Loading inspects the
model's architecture before Keras deserialises anything, accepts only the layer
types our own networks use, then loads with ``safe_mode=True``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mlcore import archives

BUNDLE_FORMAT = "mlcore-run"
BUNDLE_VERSION = 1
MODEL_MEMBER = "model.keras"
META_MEMBER = "run.json"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # uncompressed; the seed network at 128 px is about 30 MB

ALLOWED_LAYERS = frozenset(
    {
        "InputLayer",
        "Rescaling",
        "Conv2D",
        "SeparableConv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "BatchNormalization",
        "Activation",
        "Add",
        "GlobalAveragePooling2D",
        "Dropout",
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomZoom",
    }
)


class BundleError(ValueError):
    """A file that is not a usable run bundle; the message says why."""


@dataclasses.dataclass
class RunBundle:
    """A loaded bundle: the Keras model and its metadata."""

    model: Any
    metadata: dict

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["labels"])

    @property
    def image_size(self) -> int:
        return int(self.metadata["image_size"])

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.metadata.get("thresholds", {}).items()}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers."""
    import keras
    import numpy
    import sklearn
    import tensorflow

    import mlcore

    return {
        "mlcore": mlcore.__version__,
        "keras": keras.__version__,
        "tensorflow": tensorflow.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def bundle_bytes(model, metadata: dict) -> bytes:
    """The bundle as bytes (for downloads); :func:`save_bundle` writes the same bytes."""
    meta = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, **metadata, "versions": library_versions()}
    for key in ("labels", "image_size"):
        if key not in meta:
            raise ValueError(f"bundle metadata needs {key!r}")
    import keras

    # An uncompiled copy: the optimizer's state would triple the file and is never
    # needed to predict (a bundle is for inference and inspection, not resuming).
    export = keras.Model(model.input, model.output, name=model.name)  # same layers, no compile state
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / MODEL_MEMBER
        export.save(model_path)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
            bundle.write(model_path, MODEL_MEMBER)
            bundle.writestr(META_MEMBER, json.dumps(meta, indent=2, default=float))
    return buffer.getvalue()


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write a file by a temporary name renamed into place: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def save_bundle(path: str | Path, model, metadata: dict) -> Path:
    """Write a bundle atomically: a crash never leaves a half-written file behind."""
    return write_atomic(path, bundle_bytes(model, metadata))


MAX_CONFIG_BYTES = 2 * 2**20  # config.json of the compact network is about 40 KB
MAX_CONFIG_DEPTH = 40  # ours nest about 12 deep
MAX_LABEL_COUNT, MAX_LABEL_CHARS = 20, 64
IMAGE_SIZE_RANGE = (16, 512)  # what DataConfig accepts
# (module, class) pairs a config of ours holds; anything else is refused before Keras sees it.
ALLOWED_CLASSES = frozenset(
    {("keras.layers", name) for name in ALLOWED_LAYERS}
    | {("keras", "DTypePolicy"), (None, "__keras_tensor__")}
    | {("keras.initializers", name) for name in ("GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "Ones")}
    | {("keras.initializers", "Zeros")}
)  # fmt: skip
# Hyper-parameters bounded before Keras allocates anything: a Dense(150000) reached 4.9 GB.
HYPER_LIMITS = {"units": 4096, "filters": 1024, "kernel_size": 7, "pool_size": 8, "strides": 4}
MAX_INPUT_SIDE = IMAGE_SIZE_RANGE[1]
MAX_FEATURES = 1_100_000  # the seed network flattens 126 x 126 x 64 = 1,016,064 features at 512 px
MAX_LAYER_WEIGHTS = MAX_BUNDLE_BYTES // 4  # float32 weights a bundle has room for
BUNDLE_LIMITS = archives.ZipLimits(
    max_archive_bytes=MAX_BUNDLE_BYTES + 2**20, max_total_bytes=MAX_BUNDLE_BYTES, max_files=16,
    max_file_bytes=MAX_BUNDLE_BYTES,
)  # fmt: skip
MODEL_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}


def _flat(value) -> list:
    """The numbers of a shape, or of a list of shapes (an Add layer's inputs)."""
    out, stack = [], [value]
    while stack and len(out) < 64:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            out.append(item)
    return out


def _numbers(value) -> list:
    return value if isinstance(value, list) else [value]


@functools.cache
def _functional() -> tuple[str, str]:
    """The (module, class) Keras writes for a functional model, asked of Keras itself: its
    module is internal and moves between releases."""
    import keras

    inputs = keras.Input((1,))
    model_class = type(keras.Model(inputs, inputs))
    return model_class.__module__, model_class.__name__


def _check_node(node: dict) -> None:
    """One dict of a model config: an allowed (module, class), no shared objects, bounded sizes."""
    # Keras hands back the first object recorded under a shared id, whatever a later entry says it
    # is: only the dtype policies our layers share may carry one.
    if "shared_object_id" in node and (node.get("module"), node.get("class_name")) != ("keras", "DTypePolicy"):
        raise BundleError("The bundle's model shares an object that our networks never share; it was refused.")
    if "class_name" in node:
        pair = (node.get("module"), node.get("class_name"))
        allowed = pair in ALLOWED_CLASSES or pair == _functional()
        if not allowed or node.get("registered_name") not in (None, node.get("class_name")):
            shown = f"{str(pair[1])[:60]!r} ({str(pair[0] or 'unknown module')[:60]})"
            raise BundleError(f"The bundle's model contains {shown}, which our networks never use; it was refused.")
    _check_weights(node)
    for key, limit in HYPER_LIMITS.items():
        for value in _numbers(node.get(key)) if key in node else []:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= limit:
                raise BundleError(f"The bundle's model has {key} {str(value)[:40]}; our networks use 1 to {limit}.")
    for key, limit in (("batch_shape", MAX_INPUT_SIDE), ("input_shape", MAX_FEATURES), ("shape", MAX_FEATURES)):
        sides = _flat(node.get(key)) if isinstance(node.get(key), list) else []
        if any(not (side is None or (isinstance(side, int) and 0 < side <= limit)) for side in sides):
            raise BundleError(f"The bundle's model has a {key} of {str(node.get(key))[:80]}; sides go up to {limit:,}.")


def _check_weights(node: dict) -> None:
    """A layer's kernel, from its units or filters and the input shape it is built for, must fit
    in a bundle: Keras allocates it before it checks the graph (a Dense built for 100,000 inputs
    took 6.5 GB)."""
    config, built = node.get("config"), node.get("build_config")
    shape = built.get("input_shape") if isinstance(built, dict) else None
    if not isinstance(config, dict) or not isinstance(shape, list) or not shape:
        return
    width = config.get("units", config.get("filters"))
    kernel = _flat(config.get("kernel_size", 1))
    inputs = shape[-1]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width or 1, inputs or 1, *kernel)):
        return  # a wrong type is refused by the hyper-parameter check, or by Keras
    weights = (width or 0) * (inputs or 0) * math.prod(kernel)
    if weights > MAX_LAYER_WEIGHTS:
        raise BundleError(
            f"A layer of the bundle's model would hold {weights:,} weights; a bundle has room for "
            f"{MAX_LAYER_WEIGHTS:,}. It was refused before anything was allocated."
        )


def _check_weights_file(data: bytes) -> None:
    """The weights file's datasets, before Keras reads them: each within the bundle's size (a tiny
    compressed dataset of fill values declared 30,000 x 30,000 took 14 GB), none stored outside."""
    import h5py

    try:
        with h5py.File(io.BytesIO(data), "r") as weights:
            found: list = []
            weights.visititems(lambda name, item: found.append(item) if isinstance(item, h5py.Dataset) else None)
            total = 0
            for dataset in found:
                if dataset.external or dataset.is_virtual:
                    raise BundleError("The bundle's weights point at data outside the bundle; refused.")
                total += int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize
                if total > MAX_BUNDLE_BYTES:
                    raise BundleError(
                        f"The bundle's weights declare more than {MAX_BUNDLE_BYTES // 2**20} MB; refused unread."
                    )
    except BundleError:
        raise
    except Exception as error:  # h5py raises OSError, ValueError, KeyError... for a damaged file
        raise BundleError(f"The bundle's weights file cannot be read ({type(error).__name__}).") from error


def _walk_config(config) -> None:
    """Check every dict anywhere in a model config, iteratively, down to a bounded depth."""
    stack = [(config, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise BundleError("The bundle's model configuration is nested too deeply to be one of our networks.")
        if isinstance(node, dict):
            _check_node(node)
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _json(data: bytes, what: str, *, constants: bool = True):
    """Parsed JSON; ``constants=False`` refuses NaN and Infinity (no model config needs them,
    while a run's metrics may hold a NaN: a split with one class has no ROC-AUC)."""
    try:
        return json.loads(data.decode("utf-8"), **({} if constants else {"parse_constant": _no_constant}))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as error:
        raise BundleError(f"The bundle's {what} is not valid JSON ({type(error).__name__}).") from error


def _read_zip(
    source, limits: archives.ZipLimits, names: set[str], what: str, *, required: set[str]
) -> dict[str, bytes]:
    """The members of a zip, each read through a capped reader: all of ``required``, some of
    ``names``; any other member, or one that cannot be read as ours are written, refuses it."""
    try:
        with archives.open_zip(source, limits) as archive:
            listing = archives.list_members(archive, limits)
            if listing.skipped:
                reason, skipped = next(iter(listing.skipped.items()))
                raise BundleError(f"The {what} has a member that cannot be read ({skipped[0][:80]}: {reason}).")
            found = {member.path for member in listing.members}
            if not required <= found <= names:
                raise BundleError(f"A {what} holds exactly {', '.join(sorted(names))}; found {sorted(found)[:10]}.")
            reader = archives.Reader(archive, limits)
            return {member.path: reader.read(member) for member in listing.members}
    except BundleError:
        raise
    except archives.ArchiveError as error:
        raise BundleError(f"The {what} was refused: {error}") from error
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as error:  # zipfile's own, on bad bytes
        raise BundleError(f"The {what} is damaged and cannot be read ({str(error)[:200]}).") from error


def check_model_config(model_zip: bytes) -> dict:
    """Refuse a ``.keras`` archive unless it is a functional model of allowed Keras layers,
    read within limits, with every dict of its config checked before Keras sees it."""
    members = _read_zip(
        io.BytesIO(model_zip), BUNDLE_LIMITS, MODEL_MEMBERS, "model inside the bundle",
        required={"config.json", "model.weights.h5"},
    )  # fmt: skip
    if len(members["config.json"]) > MAX_CONFIG_BYTES:
        raise BundleError(f"The model's config.json is {len(members['config.json']):,} bytes; ours are far smaller.")
    config = _json(members["config.json"], "model configuration", constants=False)
    if not isinstance(config, dict) or config.get("class_name") != "Functional":
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise BundleError(f"The bundle's model is a {str(found)[:60]!r}, not one of our networks.")
    _walk_config(config)
    _check_weights_file(members["model.weights.h5"])
    return config


def _read_members(source: bytes | str | Path, *, model: bool = True) -> tuple[dict, bytes]:
    """``run.json`` and the model's bytes (empty unless ``model``), read within limits."""
    if isinstance(source, (str, Path)):
        try:
            empty = Path(source).stat().st_size == 0
        except OSError as error:
            raise BundleError(f"The bundle file cannot be read ({type(error).__name__}).") from error
        if empty:
            raise BundleError("The bundle file is empty.")
        stream = source
    elif not isinstance(source, (bytes, bytearray, memoryview)):
        raise BundleError(f"A bundle is a file or its bytes, not a {type(source).__name__}.")
    elif not source:
        raise BundleError("The bundle file is empty.")
    else:
        stream = io.BytesIO(bytes(source))
    names = {MODEL_MEMBER, META_MEMBER}
    members = _read_zip(stream, BUNDLE_LIMITS, names, "bundle", required=names)
    return _json(members[META_MEMBER], META_MEMBER), (members[MODEL_MEMBER] if model else b"")


def _check_metadata(meta: dict) -> None:
    """``run.json`` against the shapes we write, with every value the pages use in range."""
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError("Not a run bundle from this tool (its run.json has no matching format tag).")
    if meta.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"Unsupported bundle version {str(meta.get('version'))[:20]!r} (this tool reads {BUNDLE_VERSION})."
        )
    labels = meta.get("labels")
    if not (
        isinstance(labels, list)
        and 0 < len(labels) <= MAX_LABEL_COUNT
        and all(isinstance(x, str) and 0 < len(x) <= MAX_LABEL_CHARS and x.isprintable() for x in labels)
        and len(set(labels)) == len(labels)
    ):
        raise BundleError(
            f"The bundle's run.json has no valid list of labels (1 to {MAX_LABEL_COUNT} different names of at most "
            f"{MAX_LABEL_CHARS} characters)."
        )
    size = meta.get("image_size")
    if not (
        isinstance(size, int) and not isinstance(size, bool) and IMAGE_SIZE_RANGE[0] <= size <= IMAGE_SIZE_RANGE[1]
    ):
        raise BundleError(
            f"The bundle's run.json has image_size {str(size)[:20]}; it must be a whole number from "
            f"{IMAGE_SIZE_RANGE[0]} to {IMAGE_SIZE_RANGE[1]}."
        )
    thresholds = meta.get("thresholds", {})
    if not isinstance(thresholds, dict) or not all(
        key in labels and isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and 0.0 <= value <= 1.0
        for key, value in thresholds.items()
    ):  # fmt: skip
        raise BundleError("The bundle's run.json has thresholds that are not numbers from 0 to 1, one per label.")


def read_metadata(source: bytes | str | Path) -> dict:
    """A bundle's checked ``run.json`` alone, without reading its model; raises :class:`BundleError`."""
    meta, _ = _read_members(source, model=False)
    _check_metadata(meta)
    return meta


def with_metadata(source: bytes | str | Path, metadata: dict) -> bytes:
    """A bundle's bytes with a new ``run.json`` and the same model, which is copied, never loaded.
    Raises :class:`BundleError` when ``source`` is not a bundle."""
    meta = {**read_metadata(source), **metadata, "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION}
    _check_metadata(meta)
    _, model_zip = _read_members(source)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr(MODEL_MEMBER, model_zip)
        bundle.writestr(META_MEMBER, json.dumps(meta, indent=2, default=float))
    return buffer.getvalue()


def load_bundle(source: bytes | str | Path) -> RunBundle:
    """Validate and load a bundle from a path or bytes; raises :class:`BundleError`."""
    meta, model_zip = _read_members(source)
    _check_metadata(meta)
    check_model_config(model_zip)
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / MODEL_MEMBER
        model_path.write_bytes(model_zip)
        try:
            model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a bad archive
            detail = str(error).splitlines()[0][:300] if str(error) else ""
            raise BundleError(f"Keras could not load the bundle's model ({type(error).__name__}: {detail}).") from error
    size = meta["image_size"]
    expected_in, expected_out = (None, size, size, 3), (None, len(meta["labels"]))
    if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out:
        raise BundleError(
            f"The model's shapes {model.input_shape} -> {model.output_shape} do not match its run.json "
            f"({expected_in} -> {expected_out})."
        )
    return RunBundle(model, meta)


def run_metadata(
    data_config,
    train_config,
    splits,
    result,
    *,
    thresholds: dict[str, float],
    threshold_origin: dict[str, dict],
    test_metrics: dict,
) -> dict:
    """The ``run.json`` content for a finished training run. ``threshold_origin`` says, per
    label, how its threshold was set and on which split (``metrics.threshold_origin``)."""
    from mlcore.config import to_dict

    return {
        "labels": list(splits.label_names),
        "class_names": list(splits.class_names),
        "image_size": int(splits.train.images.shape[1]),
        "architecture": train_config.architecture,
        "data_config": to_dict(data_config),
        "train_config": to_dict(train_config),
        "synthetic_data": bool(splits.synthetic),
        "split_sizes": splits.sizes(),
        "thresholds": {k: float(v) for k, v in thresholds.items()},
        "threshold_origin": dict(threshold_origin),
        "history": result.history,
        "stopped_early": bool(result.stopped),
        "epochs_completed": int(result.epochs_completed),
        "train_seconds": float(result.seconds),
        "precision": result.precision,
        "test_metrics": test_metrics,
    }
