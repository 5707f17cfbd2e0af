"""Run bundles: a trained model plus everything needed to trust and reuse it.

A bundle is one zip file holding ``model.keras`` and ``run.json`` (labels,
configs, thresholds, history, metrics, library versions). Loading inspects the
model's architecture before Keras deserialises anything, accepts only the layer
types our own networks use, then loads with ``safe_mode=True``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

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


def _walk_layers(config: dict):
    for layer in config.get("config", {}).get("layers", []):
        yield layer
        if "layers" in layer.get("config", {}):
            yield from _walk_layers(layer)


def check_model_config(model_zip: bytes) -> dict:
    """Refuse a ``.keras`` archive unless it is a functional model of allowed Keras layers."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_zip)) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise BundleError(f"The model inside the bundle is not a valid .keras file ({error}).") from error
    if config.get("class_name") != "Functional":
        raise BundleError(f"The bundle's model is a {config.get('class_name')!r}, not one of our networks.")
    for layer in _walk_layers(config):
        name = layer.get("class_name")
        module = str(layer.get("module") or "")
        if name not in ALLOWED_LAYERS or layer.get("registered_name") or not module.startswith("keras"):
            raise BundleError(
                f"The bundle's model contains a layer of type {name!r} ({module or 'unknown module'}), "
                "which our networks never use; it was refused."
            )
    return config


def _read_members(source: bytes | str | Path, *, model: bool = True) -> tuple[dict, bytes]:
    """``run.json`` and the model's bytes (empty unless ``model``), after checking the zip's shape."""
    if isinstance(source, (str, Path)):
        if Path(source).stat().st_size == 0:
            raise BundleError("The bundle file is empty.")
    elif not source:
        raise BundleError("The bundle file is empty.")
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as bundle:
            names = set(bundle.namelist())
            if names != {MODEL_MEMBER, META_MEMBER}:
                raise BundleError(
                    f"A run bundle holds exactly {MODEL_MEMBER} and {META_MEMBER}; found {sorted(names)}."
                )
            total = sum(info.file_size for info in bundle.infolist())
            if total > MAX_BUNDLE_BYTES:
                raise BundleError(
                    f"The bundle unpacks to {total / 2**20:.0f} MB, over the {MAX_BUNDLE_BYTES // 2**20} MB limit."
                )
            meta = json.loads(bundle.read(META_MEMBER))
            model_zip = bundle.read(MODEL_MEMBER) if model else b""
    except zipfile.BadZipFile as error:
        raise BundleError("Not a run bundle: the file is not a zip archive.") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"The bundle's {META_MEMBER} is not valid JSON ({error}).") from error
    return meta, model_zip


def _check_metadata(meta: dict) -> None:
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError("Not a run bundle from this tool (its run.json has no matching format tag).")
    if meta.get("version") != BUNDLE_VERSION:
        raise BundleError(f"Unsupported bundle version {meta.get('version')!r} (this tool reads {BUNDLE_VERSION}).")
    labels = meta.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise BundleError("The bundle's run.json has no valid list of labels.")
    if not isinstance(meta.get("image_size"), int):
        raise BundleError("The bundle's run.json has no valid image_size.")


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
            raise BundleError(f"Keras could not load the bundle's model ({error}).") from error
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
