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
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

# Formats a user may reasonably upload; Pillow tries no other decoder.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
MAX_PIXELS = 40_000_000  # about 7,300 x 5,500; larger is refused as a decompression bomb
MAX_BYTES = 25 * 1024 * 1024
# Start-of-scan markers: a progressive photo has about 10. libjpeg walks the whole image
# once per scan, so an 800 KB file with 10,000 empty scans took 68 s of CPU to decode.
MAX_JPEG_SCANS = 100
PREDICT_CHUNK = 512  # images read and scored at once from a view on disk (24 MB at 128 px)
DENSE_PIXELS, MAX_PIXELS_PER_BYTE = 4_000_000, 1000  # past 4 MP, at most 1,000 pixels per byte of file
MAX_ASPECT_RATIO = 50  # a 1 x 40,000,000 PNG of 110 KB took 2.3 GB to decode
ORIENTATION_TAG = 0x0112
_UPRIGHT = {  # EXIF orientation -> the transpose that shows the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# libtiff reads strips in one pass; Pillow's own reader builds a Python tile per strip
# (a 17 MB TIFF of 3 million one-row strips took 41 s and 960 MB, with libtiff 0.6 s).
TiffImagePlugin.READ_LIBTIFF = True


class ImageError(ValueError):
    """A file that cannot be used as an image; the message says why."""


def _flatten_transparency(image: Image.Image) -> Image.Image:
    """Composite onto white, so transparent areas do not turn black."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image)
        high = float(array.max()) if array.size else 0.0
        scale = np.float32(255.0 / (65535.0 if high > 255 else max(high, 1.0)))
        scaled = np.multiply(array, scale, dtype=np.float32)  # float32: a 40 MP picture in 160 MB, not 320
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8)).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        return _flatten_transparency(image)
    return image.convert("RGB")


def _reduce(image: Image.Image, size: int) -> Image.Image:
    """Shrink a picture far larger than ``size`` by a whole factor before any conversion, so
    the conversions that follow (16-bit scaling, transparency) work on fewer pixels."""
    factor = min(image.size) // (2 * size)
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):  # Pillow's reduce has no 16-bit mode: take every factor-th pixel
        return Image.fromarray(np.ascontiguousarray(np.asarray(image)[::factor, ::factor]))
    if image.mode in ("1", "P"):  # no reduce for these modes: nearest keeps the palette and its transparency
        return image.resize((image.width // factor, image.height // factor), Image.Resampling.NEAREST)
    return image.reduce(factor)


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, reading only that one tag.

    ``ImageOps.exif_transpose`` also rewrites the whole EXIF block, which raises on
    malformed tags and took 9 s and 1 GB for an 8x8 picture with a huge EXIF array.
    """
    try:
        orientation = image.getexif().get(ORIENTATION_TAG)
    except Exception:  # an unreadable EXIF block: show the picture as stored
        return image
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return image.transpose(method) if method is not None else image


def _check_bytes(data: bytes) -> None:
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"The file is {len(data):,} bytes; the limit is {MAX_BYTES:,} bytes ({MAX_BYTES // 2**20} MB)."
        )
    if data[:2] == b"\xff\xd8" and data.count(b"\xff\xda") > MAX_JPEG_SCANS:
        raise ImageError(
            f"The JPEG has more than {MAX_JPEG_SCANS} scans; photos have about 10. It was refused rather than decoded."
        )


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels.")
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        raise ImageError(
            f"The image is {width}x{height} pixels: longer than {MAX_ASPECT_RATIO} times its "
            "width is not a photo this model can use."
        )


def _check_density(image: Image.Image, size: int) -> None:
    """Refuse a big non-JPEG that declares far more pixels than its bytes could hold of a
    picture (a 1.6 KB lossless WebP of one colour declared 40 MP and took 600 MB to decode).
    JPEGs decode at reduced scale, so their size costs little."""
    pixels = image.size[0] * image.size[1]
    if image.format != "JPEG" and pixels > max(DENSE_PIXELS, MAX_PIXELS_PER_BYTE * size):
        raise ImageError(
            f"The image declares {image.size[0]}x{image.size[1]} pixels in only {size:,} bytes: refused "
            "unread as a decompression bomb."
        )


def load_image(
    source: bytes | str | Path | BinaryIO, *, max_pixels: int = MAX_PIXELS, draft: int | None = None
) -> Image.Image:
    """Open, validate and normalise one image to upright RGB.

    Animated files give their first frame. ``draft`` lets a JPEG decode at 1/2, 1/4
    or 1/8 scale when the result need only be that many pixels on its shorter side.
    Raises :class:`ImageError` for empty, non-image, truncated, oversized, degenerate
    or unsupported files, and for anything else the decoders fail on: the bytes come
    from anyone.
    """
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
    _check_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            _check_size(*image.size, max_pixels)
            _check_density(image, len(data))
            image.seek(0)
            if draft and image.format == "JPEG":
                image.draft("RGB", (draft, draft))
            image.load()
            if draft:
                image = _reduce(image, draft)
            return _to_rgb(_upright(image))
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
    except Exception as error:  # malformed structures reach Pillow's parsers as struct/Type/KeyErrors
        raise ImageError(f"The image file is malformed and cannot be decoded ({type(error).__name__}).") from error


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
    if hasattr(images, "batches"):  # a view of images on disk: read and score a chunk at a time
        parts = [predict_proba(model, chunk, batch_size=batch_size) for chunk in images.batches(PREDICT_CHUNK)]
        return np.concatenate(parts) if parts else np.zeros((0, model.output_shape[-1]), dtype=np.float32)
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
    model,
    sources: list[tuple[str, bytes | str | Path]],
    *,
    label_names: tuple[str, ...],
    thresholds: np.ndarray,
    image_size: int,
) -> list[Prediction | ImageError]:
    """Predict every readable source; unreadable ones come back as their :class:`ImageError`."""
    results: list[Prediction | ImageError | None] = []
    batch, positions = [], []
    for _name, source in sources:
        try:
            batch.append(to_model_input(load_image(source), image_size))
            positions.append(len(results))
            results.append(None)
        except ImageError as error:
            results.append(error)
    if batch:
        probabilities = predict_proba(model, np.stack(batch))
        for position, row in zip(positions, probabilities, strict=True):
            results[position] = Prediction(
                name=sources[position][0],
                probabilities={label: float(p) for label, p in zip(label_names, row, strict=True)},
                labels=tuple(label for label, p, t in zip(label_names, row, thresholds, strict=True) if p >= t),
            )
    return results
