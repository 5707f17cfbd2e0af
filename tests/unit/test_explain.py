"""Grad-CAM: it points at what the generator drew, works for both networks and for bundles."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mlcore import datasets, explain, model, store, train
from mlcore.config import TrainConfig

SIZE = 96
ANIMALS = 480


@pytest.fixture(scope="module")
def demo_with_scenes():
    """The generated demo set plus scenes with no animal (all labels negative), and where each animal is.

    In the demo set dog and cat are exclusive, so a network may learn "cat" as "no dog
    features" and its cat heatmap then has nothing to point at; empty scenes make each
    label need evidence of its own.
    """
    demo = datasets.make_demo_set(ANIMALS, SIZE, seed=3)
    scenes = datasets.demo_scenes(ANIMALS // 2, SIZE, seed=3)
    images = np.concatenate([demo.images, scenes])
    targets = np.zeros((len(images), 2), np.float32)
    targets[np.arange(ANIMALS), 1 - demo.class_index] = 1  # columns dog, cat; class 1 is "dogs"
    masks = np.concatenate([datasets.demo_masks(ANIMALS, SIZE, seed=3), np.zeros((len(scenes), SIZE, SIZE), bool)])
    order = np.random.default_rng(0).permutation(len(images))
    return images[order], targets[order], masks[order]


def test_dog_and_cat_heatmaps_lie_on_the_drawn_animal(demo_with_scenes):
    images, targets, masks = demo_with_scenes
    test, fit = slice(0, 120), slice(120, None)
    result = train.train_model(
        (images[fit], targets[fit]), None, TrainConfig(architecture="seed", epochs=8, seed=1), ("dog", "cat")
    )
    for column, label in enumerate(("dog", "cat")):
        chosen = np.flatnonzero(targets[test, column] == 1)
        heat = explain.gradcam(result.model, images[test][chosen], column)
        region = masks[test][chosen]
        inside = (heat * region).sum(axis=(1, 2)) / np.maximum(heat.sum(axis=(1, 2)), 1e-12)
        uniform = region.mean(axis=(1, 2))  # what a flat map would put on the animal
        assert inside.mean() > 0.5, f"{label}: {inside.mean():.2f} of the heat on the animal"
        assert inside.mean() > 2 * uniform.mean(), f"{label}: {inside.mean():.2f} against {uniform.mean():.2f}"


@pytest.mark.parametrize("architecture", ["seed", "compact"])
def test_both_networks_and_their_bundles_are_explained_alike(architecture):
    network = model.build_model((64, 64, 3), 3, architecture=architecture)
    images = datasets.make_demo_set(4, 64, seed=1).images
    heat = explain.gradcam(network, images, 1)
    assert heat.shape == (4, 64, 64)
    assert heat.min() >= 0
    assert np.allclose(heat.reshape(4, -1).max(axis=1)[heat.reshape(4, -1).max(axis=1) > 0], 1.0)
    assert explain.gradcam(network, images[0], 1).shape == (64, 64)
    bundle = store.load_bundle(store.bundle_bytes(network, {"labels": ["dog", "cat", "indoor"], "image_size": 64}))
    np.testing.assert_allclose(explain.gradcam(bundle.model, images, 1), heat, atol=1e-4)
    with pytest.raises(ValueError, match="label_index"):
        explain.gradcam(network, images, 3)


def test_the_feature_map_is_the_last_convolutional_block():
    seed = model.build_model((64, 64, 3), 3, architecture="seed")
    convolutions = [layer for layer in seed.layers if isinstance(layer, keras.layers.Conv2D)]
    assert explain.feature_layer(seed) is convolutions[1]  # the second of the notebook's two convolutions
    compact = model.build_model((64, 64, 3), 3, architecture="compact")
    assert explain.feature_layer(compact).name == "block3_relu2"


def test_overlay_tints_cold_pixels_dark_and_hot_ones_bright():
    photo = np.full((30, 50, 3), 128, np.uint8)
    heat = np.zeros((8, 8))
    heat[:, 4:] = 1.0  # the right half is hot
    blended = explain.overlay(photo, heat, alpha=0.5).astype(int)
    assert blended.shape == photo.shape
    cold, hot = blended[5, 5], blended[5, 45]
    np.testing.assert_allclose(cold, (128 + np.array([68, 1, 84])) / 2, atol=1)  # halfway to dark purple
    np.testing.assert_allclose(hot, (128 + np.array([253, 231, 37])) / 2, atol=1)  # halfway to yellow
