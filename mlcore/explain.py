"""Why the network decided: Grad-CAM heatmaps from its last convolutional block.

Grad-CAM (Selvaraju et al., 2017) weights each channel of the last convolutional
feature map by the mean gradient of a label's score over it and keeps the positive
part of the sum: where in the picture the evidence *for* that label lies. The
score differentiated here is the label's logit (the sigmoid's input), so a
confident prediction (probability 1.0 in float32) still has a gradient.
Works on any of our networks, trained in this process or loaded from a bundle.
"""

from __future__ import annotations

import threading
import weakref

import keras
import numpy as np
from PIL import Image

# Layers whose 4-D output is "the last convolutional block's" feature map: a convolution
# (seed: its ReLU is fused), or the activation or sum that ends a residual block (compact).
FEATURE_LAYERS = (keras.layers.Conv2D, keras.layers.Activation, keras.layers.Add, keras.layers.BatchNormalization)
# A perceptual colour map (dark blue -> teal -> yellow), anchors of viridis.
_COLORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
_PALETTE = np.stack(  # 256 colours interpolated between those anchors, looked up by heat level
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_COLORS)), _COLORS[:, c]) for c in range(3)], axis=-1
).astype(np.float32)


def feature_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer whose output Grad-CAM explains: the last convolutional block's feature map."""
    candidates = [layer for layer in model.layers if isinstance(layer, FEATURE_LAYERS) and len(layer.output.shape) == 4]
    if not candidates:
        raise ValueError(f"{model.name} has no convolutional feature map to explain")
    return candidates[-1]


class GradCam:
    """Grad-CAM for one model; build once per model, then call per batch of images and a label.

    Thread-safe: the traced function holds no per-call state. It keeps the model's
    layers but not the model object, so a cache of these does not keep models alive.
    """

    def __init__(self, model: keras.Model):
        import tensorflow as tf

        output = model.layers[-1]
        if not isinstance(output, keras.layers.Dense):
            raise ValueError(f"{model.name} does not end in a Dense layer of label scores")
        self.layer = feature_layer(model)
        self.labels = int(model.output_shape[-1])
        features = keras.Model(model.inputs, [self.layer.output, output.input])
        kernel, bias = output.kernel, output.bias
        height, width = (int(v) for v in model.input_shape[1:3])
        signature = [tf.TensorSpec((None, height, width, 3), tf.float32), tf.TensorSpec((), tf.int32)]

        @tf.function(input_signature=signature)
        def heatmaps(images, label_index):
            with tf.GradientTape() as tape:
                feature_map, hidden = features(images, training=False)
                tape.watch(feature_map)
                logits = tf.matmul(hidden, kernel) + bias
                score = tf.gather(logits, label_index, axis=1)
            gradients = tape.gradient(score, feature_map)
            weights = tf.reduce_mean(gradients, axis=(1, 2))
            cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", feature_map, weights))
            cam = tf.image.resize(cam[..., None], (height, width), method="bilinear")[..., 0]
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            return tf.math.divide_no_nan(cam, peak), tf.sigmoid(logits)

        self._heatmaps = heatmaps

    def __call__(self, images: np.ndarray, label_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps ``(n, h, w)`` in [0, 1] at the model's input size, and the probabilities
        ``(n, labels)``, for uint8 images ``(n, h, w, 3)`` and one label."""
        import tensorflow as tf

        if not 0 <= int(label_index) < self.labels:
            raise ValueError(f"label_index must be in [0, {self.labels}), got {label_index}")
        batch = tf.convert_to_tensor(np.asarray(images), dtype=tf.float32)
        cam, probabilities = self._heatmaps(batch, tf.constant(int(label_index), tf.int32))
        return cam.numpy(), probabilities.numpy()


_explainers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_explainers_lock = threading.Lock()


def gradcam(model: keras.Model, images: np.ndarray, label_index: int) -> np.ndarray:
    """Grad-CAM heatmaps ``(n, h, w)`` (or ``(h, w)`` for one image) in [0, 1] for one label.

    The traced explainer is built once per model and kept while the model lives.
    """
    images = np.asarray(images)
    single = images.ndim == 3
    with _explainers_lock:
        explainer = _explainers.get(model)
        if explainer is None:
            explainer = _explainers[model] = GradCam(model)
    heat, _ = explainer(images[None] if single else images, label_index)
    return heat[0] if single else heat


def overlay(image: np.ndarray | Image.Image, heatmap: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """``image`` (uint8 RGB, any size) with ``heatmap`` (in [0, 1]) blended over it in colour.

    The whole picture is tinted by the colour map, dark purple where the heat is 0 and
    yellow where it is 1. The colour follows the square root of the heat: Grad-CAM maps
    of a fine grid are peaked, and a linear scale would show only their few hottest pixels.
    """
    picture = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    height, width = picture.shape[:2]
    heat = Image.fromarray(np.clip(heatmap, 0, 1).astype(np.float32), mode="F")
    heat = np.clip(np.asarray(heat.resize((width, height), Image.Resampling.BILINEAR)), 0, 1)
    color = _PALETTE[np.rint(np.sqrt(heat) * 255).astype(np.uint8)]
    return np.clip(picture + (color - picture) * alpha, 0, 255).astype(np.uint8)
