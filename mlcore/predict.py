"""Turning real-world image files into model inputs, and models into probabilities.

Uploads are hostile by default: any format quirk (EXIF rotation, transparency,
CMYK, 16-bit, animation) is normalised, and anything that is not a sane image
gets an :class:`ImageError` with a message a person can act on.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a user may reasonably upload; Pillow tries no other decoder.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
MAX_PIXELS = 40_000_000  # about 7,300 x 5,500; larger is refused as a decompression bomb
MAX_BYTES = 25 * 1024 * 1024


class ImageError(ValueError):
    """A file that cannot be used as an image; the message says why."""


def _flatten_transparency(image: Image.Image) -> Image.Image:
    """Composite onto white, so transparent areas do not turn black."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 0
        scale = 255.0 / (65535.0 if high > 255 else max(high, 1.0))
        return Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8)).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        return _flatten_transparency(image)
    return image.convert("RGB")


def load_image(source: bytes | str | Path | BinaryIO, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, validate and normalise one image to upright RGB.

    Animated files give their first frame. Raises :class:`ImageError` for empty,
    non-image, truncated, oversized or unsupported files.
    """
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, bytes):
        data = source
    else:
        data = source.read()
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageError(f"The file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels."
                )
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(
            f"Not a supported image (accepted: {', '.join(f.lower() for f in ALLOWED_FORMATS)})."
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"The image has too many pixels to decode safely: {error}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"The image is damaged or truncated and cannot be decoded ({error}).") from error


def to_model_input(image: Image.Image, image_size: int) -> np.ndarray:
    """Resize like the training data (bilinear, to a square) and return uint8 HWC."""
    resized = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def predict_proba(model, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Per-label probabilities for a uint8 batch ``(n, h, w, 3)``.

    Small batches go through ``predict_on_batch``, the model's compiled predict
    step: ``model.predict`` builds a dataset and a progress bar each call, and an
    eager call runs layer by layer; both cost more than the inference itself.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (n, height, width, 3), got {images.shape}")
    if len(images) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    if len(images) <= batch_size:
        return np.asarray(model.predict_on_batch(images), dtype=np.float32)
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One image's probabilities and decisions."""

    name: str
    probabilities: dict[str, float]
    labels: tuple[str, ...]


def predict_files(
    model, sources: list[tuple[str, bytes | str | Path]], *, label_names: tuple[str, ...],
    thresholds: np.ndarray, image_size: int,
) -> list[Prediction | ImageError]:
    """Predict every readable source; unreadable ones come back as their :class:`ImageError`."""
    results: list[Prediction | ImageError | None] = []
    batch, positions = [], []
    for name, source in sources:
        try:
            batch.append(to_model_input(load_image(source), image_size))
            positions.append(len(results))
            results.append(None)
        except ImageError as error:
            results.append(error)
    if batch:
        probabilities = predict_proba(model, np.stack(batch))
        for position, row in zip(positions, probabilities):
            results[position] = Prediction(
                name=sources[position][0],
                probabilities={label: float(p) for label, p in zip(label_names, row)},
                labels=tuple(label for label, p, t in zip(label_names, row, thresholds) if p >= t),
            )
    return results
