import io
import json
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from mlcore import model, predict, store

LABELS = ["dog", "cat", "indoor"]


def _metadata(size=32):
    return {"labels": LABELS, "image_size": size, "thresholds": {"dog": 0.4, "cat": 0.5, "indoor": 0.6}}


@pytest.fixture(scope="module")
def compact():
    return model.build_model((32, 32, 3), 3, architecture="compact")


def test_save_load_gives_the_same_predictions(tmp_path, compact):
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    path = store.save_bundle(tmp_path / "runs" / "run.zip", compact, _metadata())
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.zip"]  # no temp file left
    bundle = store.load_bundle(path)
    np.testing.assert_allclose(
        predict.predict_proba(bundle.model, images), predict.predict_proba(compact, images), atol=1e-6
    )
    assert bundle.label_names == tuple(LABELS)
    assert bundle.image_size == 32
    assert bundle.thresholds == {"dog": 0.4, "cat": 0.5, "indoor": 0.6}
    assert bundle.metadata["versions"]["keras"] == keras.__version__
    assert store.load_bundle(path.read_bytes()).label_names == tuple(LABELS)


def test_seed_network_round_trips_without_optimizer_state(tmp_path):
    from mlcore import train

    seed = train.compile_model(model.build_model((32, 32, 3), 3, architecture="seed"), tuple(LABELS))
    images = np.random.default_rng(1).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    seed.fit(images, np.ones((8, 3), np.float32), epochs=1, verbose=0)  # creates Adam's slots
    path = store.save_bundle(tmp_path / "seed.zip", seed, _metadata())
    bundle = store.load_bundle(path)
    assert bundle.model.count_params() == seed.count_params()
    np.testing.assert_allclose(predict.predict_proba(bundle.model, images), predict.predict_proba(seed, images))
    # Weights alone: 4 bytes per parameter plus a little framing, no optimizer slots.
    assert path.stat().st_size < seed.count_params() * 4 * 1.2


def _bundle_with(network, metadata=None) -> bytes:
    """A bundle crafted by hand, as someone sending a hostile file would, not via our saver."""
    meta = {"format": store.BUNDLE_FORMAT, "version": store.BUNDLE_VERSION, **(metadata or _metadata())}
    with tempfile.TemporaryDirectory() as tmp:
        network.save(Path(tmp) / "model.keras")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            bundle.write(Path(tmp) / "model.keras", "model.keras")
            bundle.writestr("run.json", json.dumps(meta))
    return buffer.getvalue()


def test_lambda_layer_is_refused():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="sigmoid")(x)
    with pytest.raises(store.BundleError, match="'Lambda'"):
        store.load_bundle(_bundle_with(keras.Model(inputs, outputs)))


@keras.saving.register_keras_serializable(package="elsewhere")
class Foreign(keras.layers.Layer):
    def call(self, inputs):
        return inputs


def test_foreign_layer_and_sequential_are_refused():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(Foreign()(inputs))
    with pytest.raises(store.BundleError, match="'Foreign'"):
        store.load_bundle(_bundle_with(keras.Model(inputs, keras.layers.Dense(3)(x))))
    sequential = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(store.BundleError, match="Sequential"):
        store.load_bundle(_bundle_with(sequential))


def test_mismatched_metadata_and_junk_are_refused(compact):
    with pytest.raises(store.BundleError, match="do not match"):
        store.load_bundle(_bundle_with(compact, {"labels": ["a", "b"], "image_size": 32}))
    with pytest.raises(store.BundleError, match="not a zip"):
        store.load_bundle(b"hello")
    with pytest.raises(store.BundleError, match="empty"):
        store.load_bundle(b"")
    good = _bundle_with(compact)
    with zipfile.ZipFile(io.BytesIO(good)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as target:
        target.writestr("model.keras", members["model.keras"])
        meta = json.loads(members["run.json"])
        meta["format"] = "something-else"
        target.writestr("run.json", json.dumps(meta))
    with pytest.raises(store.BundleError, match="format tag"):
        store.load_bundle(tampered.getvalue())
    extra = io.BytesIO()
    with zipfile.ZipFile(extra, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
        target.writestr("payload.py", "print('hi')")
    with pytest.raises(store.BundleError, match="exactly"):
        store.load_bundle(extra.getvalue())
