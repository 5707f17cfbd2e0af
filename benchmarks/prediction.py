"""One uploaded photo to probabilities, with the model already loaded.

    python -m benchmarks.prediction --data-dir DIR --repeats 40

Ours: the JPEG's bytes through ``predict.load_image`` (checks, EXIF rotation,
colour modes), ``to_model_input`` and ``predict_proba`` (``predict_on_batch`` for
small batches). Beside it: the same image and model through ``model.predict``.
Both use the ``seed`` network at 128 px; the calls alternate so noise hits both.
Also timed, model warm: a Grad-CAM heatmap for one 128-px image (``explain.gradcam``)
for each network, and the heatmap laid over the photo (``explain.overlay``).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from benchmarks.common import emit, median, timed


def photo_bytes(data_dir: Path) -> tuple[str, bytes]:
    """A real 500x375 photo from the validation split."""
    from PIL import Image

    folder = data_dir / "cats_and_dogs_filtered" / "validation" / "dogs"
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as image:
            if image.size == (500, 375):
                return path.name, path.read_bytes()
    raise FileNotFoundError(f"no 500x375 JPEG under {folder}")


def explanation_times(network, data: bytes, repeats: int) -> dict[str, float]:
    """Grad-CAM for one image with each network (warm), and the overlay on the full photo."""
    from mlcore import explain, predict
    from mlcore import model as models

    image = predict.load_image(data)
    pixels = predict.to_model_input(image, 128)
    compact = models.build_model((128, 128, 3), 3, architecture="compact")
    results = {}
    for name, net in (("seed", network), ("compact", compact)):
        for _ in range(3):  # the first call traces the gradient function
            explain.gradcam(net, pixels, 0)
        results[f"gradcam_{name}_ms"] = round(
            1000 * median(timed(lambda n=net: explain.gradcam(n, pixels, 0), repeats)), 2
        )
    heat = explain.gradcam(network, pixels, 0)
    results["overlay_ms"] = round(1000 * median(timed(lambda: explain.overlay(image, heat), repeats)), 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    from mlcore import model as models
    from mlcore import predict, runtime

    runtime.configure_threads()
    name, data = photo_bytes(args.data_dir)
    network = models.build_model((128, 128, 3), 3, architecture="seed")

    def ours() -> np.ndarray:
        return predict.predict_proba(network, predict.to_model_input(predict.load_image(data), 128))

    def keras_predict() -> np.ndarray:
        image = predict.to_model_input(predict.load_image(io.BytesIO(data)), 128)
        return np.asarray(network.predict(image[None], verbose=0))

    for _ in range(3):  # first calls trace and allocate
        ours(), keras_predict()
    ours_times, keras_times = [], []
    for _ in range(args.repeats):
        ours_times += timed(ours, 1)
        keras_times += timed(keras_predict, 1)
    np.testing.assert_allclose(ours(), keras_predict(), atol=1e-5)
    decode_times = timed(lambda: predict.to_model_input(predict.load_image(data), 128), args.repeats)
    explanation = explanation_times(network, data, args.repeats)
    emit(
        {
            "image": name,
            "ours_ms": round(1000 * median(ours_times), 2),
            "model_predict_ms": round(1000 * median(keras_times), 2),
            "decode_resize_ms": round(1000 * median(decode_times), 2),
            **explanation,
            "repeats": args.repeats,
        }
    )


if __name__ == "__main__":
    main()
