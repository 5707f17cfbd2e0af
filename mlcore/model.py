"""The CNN architectures. Both take raw uint8 images: rescaling lives in the model."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from mlcore.config import ARCHITECTURES


def build_seed_model(input_shape: tuple[int, int, int], num_labels: int) -> keras.Model:
    """The reference notebook's network, exactly, behind a Rescaling layer."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Conv2D(32, (3, 3), activation="relu")(x)
    x = layers.MaxPooling2D(2, 2)(x)
    x = layers.Conv2D(64, (3, 3), activation="relu")(x)
    x = layers.MaxPooling2D(2, 2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(num_labels, activation="sigmoid", name="labels", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def _residual_block(x, filters: int, name: str):
    """Two 3x3 convolutions with batch norm, the first with stride 2, plus a 1x1 strided shortcut."""
    shortcut = layers.Conv2D(filters, 1, strides=2, use_bias=False, name=f"{name}_shortcut")(x)
    shortcut = layers.BatchNormalization(momentum=0.9, name=f"{name}_shortcut_bn")(shortcut)
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn1")(x)
    x = layers.Activation("relu", name=f"{name}_relu1")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn2")(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.Activation("relu", name=f"{name}_relu2")(x)


COMPACT_WIDTHS = (64, 128, 256)


def augmentation_layers(seed: int | None = None) -> list[layers.Layer]:
    """The compact network's augmentation: random horizontal flips, shifts of up to 10% and zooms
    of up to 15% (edges reflected). Active only in training."""
    return [
        layers.RandomFlip("horizontal", seed=seed, name="augment_flip"),
        layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed, name="augment_shift"),
        layers.RandomZoom(0.15, fill_mode="reflect", seed=seed, name="augment_zoom"),
    ]


def augmented_examples(images: np.ndarray, *, copies: int = 3, seed: int = 0) -> np.ndarray:
    """Each uint8 image ``copies`` times as augmentation shows it to the network in training:
    shape ``(n, copies, h, w, 3)``, uint8."""
    pipeline = keras.Sequential(augmentation_layers(seed))
    batch = np.asarray(images, dtype=np.float32)
    views = [np.asarray(pipeline(batch, training=True)) for _ in range(copies)]
    return np.clip(np.stack(views, axis=1), 0, 255).astype(np.uint8)


def build_compact_model(
    input_shape: tuple[int, int, int], num_labels: int, *, augmentation: bool = True
) -> keras.Model:
    """A small ResNet-style CNN: augmentation, a strided stem with max pooling, three
    residual blocks with batch norm, global average pooling and dropout.

    Plain 3x3 convolutions rather than separable ones: on CPUs TensorFlow's
    depthwise kernels (their gradients above all) are several times slower per
    useful FLOP, and early downsampling keeps the work per image below the seed
    network's while the receptive field covers the whole image.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if augmentation:  # active only while training; inference sees the image as is
        for layer in augmentation_layers():
            x = layer(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for index, filters in enumerate(COMPACT_WIDTHS):
        x = _residual_block(x, filters, name=f"block{index + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    outputs = layers.Dense(num_labels, activation="sigmoid", name="labels", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="compact_cnn")


def build_model(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    num_labels: int = 3,
    *,
    architecture: str = "seed",
    augmentation: bool = True,
    dtype_policy: str = "float32",
) -> keras.Model:
    """Build an uncompiled network by name (``"seed"`` or ``"compact"``).

    ``dtype_policy="mixed_bfloat16"`` computes in bfloat16 with float32 weights; the
    output layer stays float32, so the sigmoid and the loss are float32 either way.
    Keras keeps its default policy per thread, so this never touches other threads.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if num_labels < 1:
        raise ValueError(f"num_labels must be positive, got {num_labels}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        if architecture == "seed":
            return build_seed_model(input_shape, num_labels)
        return build_compact_model(input_shape, num_labels, augmentation=augmentation)
    finally:
        keras.config.set_dtype_policy(previous)
