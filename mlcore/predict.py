"""Turning real-world image files into model inputs, and models into probabilities.

Uploads are hostile by default: any format quirk (EXIF rotation, transparency,
CMYK, 16-bit, animation) is normalised, and anything that is not a sane image
gets an :class:`ImageError` with a message a person can act on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import struct
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import simplejpeg
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

# Formats a user may reasonably upload; Pillow tries no other decoder.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
JPEG_FORMATS = ("JPEG", "MPO")  # Pillow opens a JPEG with a multi-picture index as "MPO"
MAX_PIXELS = 40_000_000  # about 7,300 x 5,500; larger is refused as a decompression bomb
MAX_BYTES = 25 * 1024 * 1024
# Start-of-scan markers: a progressive photo has about 10. libjpeg walks the whole image
# once per scan, so an 800 KB file with 10,000 empty scans took 68 s of CPU to decode.
MAX_JPEG_SCANS = 100
PREDICT_CHUNK = 512  # images read and scored at once from a view on disk (24 MB at 128 px)
DENSE_PIXELS, MAX_PIXELS_PER_BYTE = 4_000_000, 1000  # past 4 MP, at most 1,000 pixels per byte of file
MAX_ASPECT_RATIO = 50  # a 1 x 40,000,000 PNG of 110 KB took 2.3 GB to decode
# Memory one picture may take while it is decoded and converted, whatever its format: three
# visitors decoding at once must fit in a shared server (a Community Cloud app has about 2.7 GB).
DECODE_BUDGET = 300 * 2**20
# Pictures that need more than this to decode are decoded one at a time in the whole process (every
# session's uploads, every decoding thread): many decoding at once stay within one budget plus this
# much per thread.
HEAVY_DECODE = 64 * 2**20
_HEAVY = threading.Lock()
# Bytes per pixel of Pillow's decoded picture (modes not named: 4) and, on top of it, of the
# conversion to RGB (the copies :func:`_to_rgb` makes, with the upright copy before it).
_STORED = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2}
_CONVERTED = {"RGBA": 20, "LA": 20, "PA": 20, "P": 17, "I;16": 14, "I;16L": 14, "I;16B": 14, "I": 18, "F": 18}
_ALPHA_MODES = ("RGBA", "LA")
# What a decoder holds on top of the picture, per pixel: libwebp's two RGBA canvases.
_DECODER = {"WEBP": 12}
MAX_EXIF_BYTES = 65_535  # a JPEG's EXIF segment cannot be longer; a longer block in a PNG or WebP is ignored
MAX_TIFF_TAG_BYTES = 1 << 20  # a tag's values; Pillow unpacks each into Python objects (24 MB took 20 s)
_TIFF_LISTS = {273, 279, 324, 325}  # strip and tile offsets and byte counts: one value per strip or tile
_TIFF_TYPE_BYTES = (
    dict.fromkeys((1, 2, 6, 7), 1)
    | {3: 2, 8: 2}
    | dict.fromkeys((4, 9, 11, 13), 4)
    | dict.fromkeys((5, 10, 12, 16, 17, 18), 8)
)
# Pillow decodes run-length BMPs in Python: 41 KB of runs at 40 MP took 10 s of CPU.
MAX_RLE_BMP_PIXELS, MAX_RLE_BMP_BYTES = 4_000_000, 1 << 20
# libjpeg's warnings that mean part of the picture is missing, which libjpeg fills with grey; the
# others (an unknown JFIF revision, odd scan parameters, stray bytes between segments) leave it whole.
_DATA_LOST = ("premature end", "corrupt jpeg data", "bad huffman", "bad arithmetic", "instead of rst")
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
        return Image.fromarray(np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)).convert("RGB")
    has_alpha = image.mode in (*_ALPHA_MODES, "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        return _flatten_transparency(image)
    return image.convert("RGB")


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """Shrink a picture by a whole factor before any conversion, so the conversions that
    follow (16-bit scaling, transparency) work on fewer pixels."""
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):  # Pillow's reduce has no 16-bit mode: take every factor-th pixel
        return Image.fromarray(np.ascontiguousarray(np.asarray(image)[::factor, ::factor]))
    if image.mode in _ALPHA_MODES:  # one band at a time: reduce would premultiply a full-size copy first
        return Image.merge(image.mode, [image.getchannel(band).reduce(factor) for band in image.getbands()])
    if image.mode in ("RGB", "L", "I", "F", "CMYK", "YCbCr"):
        return image.reduce(factor)
    # no reduce for the others ("1", "P", "PA", ...): nearest keeps a palette and its transparency
    return image.resize((image.width // factor, image.height // factor), Image.Resampling.NEAREST)


def _decoder_bytes(image: Image.Image, full_size: tuple[int, int]) -> int:
    """What the decoder holds beside the picture: a progressive JPEG's coefficients (2 bytes per
    sample of every component, at full size whatever the draft), libtiff's raw strip or tile
    (16-bit samples included), libwebp's canvases."""
    width, height = full_size
    if image.format in JPEG_FORMATS and image.info.get("progressive"):
        h_max = max(h for _, h, _, _ in image.layer)
        v_max = max(v for _, _, v, _ in image.layer)
        blocks = sum(-(-width * h // (8 * h_max)) * -(-height * v // (8 * v_max)) for _, h, v, _ in image.layer)
        return blocks * 128
    if image.format == "TIFF":
        tags = image.tag_v2
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        samples = int(tags.get(277, len(bits)))
        sample_bits = sum(bits) if len(bits) == samples else int(bits[0]) * samples
        if 322 in tags and 323 in tags:
            area = int(tags[322]) * int(tags[323])
        else:
            area = width * min(height, int(tags.get(278, height)))
        # YCbCr goes through libtiff's RGBA reader: a whole RGBA raster besides the picture
        return area * sample_bits // 8 + (width * height * 4 if tags.get(262) == 6 else 0)
    return width * height * _DECODER.get(image.format, 0)


def _decoding_bytes(image: Image.Image, factor: int, decoder: int) -> int:
    """Peak bytes to decode ``image`` and convert it to RGB after reducing it by ``factor``. The
    decoder's buffers go once the picture is decoded, and the picture once it is reduced."""
    width, height = image.size
    picture = width * height * _STORED.get(image.mode, 4)
    converted = (width // factor) * (height // factor) * _CONVERTED.get(image.mode, 8)
    if factor < 2:
        return picture + decoder + converted
    # Reducing holds a second copy of one band (of the whole 16-bit picture, read as an array).
    reducing = picture if image.mode.startswith("I;16") else picture // 4 if image.mode in _ALPHA_MODES else 0
    return max(picture + max(decoder, reducing), converted)


def _reduction(image: Image.Image, size: int | None, decoder: int, original: tuple[int, int]) -> tuple[int, int]:
    """The whole factor to shrink a picture by for a result of ``size`` pixels: down to no less than
    twice ``size`` on its shorter side, or to ``size`` itself where only that fits ``DECODE_BUDGET``
    (the per-format pixel cap), and the bytes decoding will take. Raises :class:`ImageError` when
    nothing fits."""
    shorter = min(image.size)
    for factor in dict.fromkeys((shorter // (2 * size), shorter // size) if size else (1,)):
        needed = _decoding_bytes(image, max(1, factor), decoder)
        if needed <= DECODE_BUDGET:
            return max(1, factor), needed
    raise ImageError(
        f"The image is {original[0]}x{original[1]} pixels in {image.mode} mode: decoding it would take about "
        f"{needed // 2**20:,} MB, over the {DECODE_BUDGET // 2**20} MB allowed per image. "
        "Save it smaller or as an 8-bit RGB JPEG or PNG."
    )


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, reading only that one tag.

    ``ImageOps.exif_transpose`` also rewrites the whole EXIF block, which raises on
    malformed tags and took 9 s and 1 GB for an 8x8 picture with a huge EXIF array.
    """
    exif = image.info.get("exif")
    if isinstance(exif, (bytes, bytearray)) and len(exif) > MAX_EXIF_BYTES:
        return image  # Pillow would unpack every value of every tag in it (24 MB of them took 12 s)
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


def _check_tiff_tags(data: bytes) -> None:
    """Refuse a TIFF with a tag far longer than a picture needs, before Pillow reads it: Pillow
    unpacks every value (three million resolutions took 11 s and 485 MB inside ``Image.open``).
    Only the first directory is read, as Pillow reads only that one for the first frame."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 16:
        return
    big = struct.unpack_from(order + "H", data, 2)[0] == 43
    entry, count_format, offset = (
        (20, "Q", struct.unpack_from(order + "Q", data, 8)[0])
        if big
        else (12, "I", struct.unpack_from(order + "I", data, 4)[0])
    )
    head, link = ("Q", 8) if big else ("H", 2)
    if not 0 < offset <= len(data) - link:
        return  # a broken header: Pillow refuses it
    (entries,) = struct.unpack_from(order + head, data, offset)
    start = offset + link
    for index in range(min(entries, (len(data) - start) // entry)):
        tag, kind = struct.unpack_from(order + "HH", data, start + index * entry)
        (count,) = struct.unpack_from(order + count_format, data, start + index * entry + 4)
        size = count * _TIFF_TYPE_BYTES.get(kind, 1)
        if tag not in _TIFF_LISTS and size > MAX_TIFF_TAG_BYTES:
            raise ImageError(
                f"The TIFF's tag {tag} holds {size:,} bytes of values; a picture needs far fewer. Refused unread."
            )


def _check_bmp(image: Image.Image, size: int) -> None:
    """Run-length BMPs decode in Python: refuse big ones rather than spend seconds of CPU."""
    if image.format == "BMP" and image.info.get("compression") in (1, 2):
        pixels = image.size[0] * image.size[1]
        if pixels > MAX_RLE_BMP_PIXELS or size > MAX_RLE_BMP_BYTES:
            raise ImageError(
                f"Run-length compressed BMPs are accepted up to {MAX_RLE_BMP_PIXELS // 1_000_000} megapixels and "
                f"{MAX_RLE_BMP_BYTES // 2**20} MB (this one: {image.size[0]}x{image.size[1]}, {size:,} bytes). "
                "Save it as PNG or JPEG."
            )


def _check_jpeg(data: bytes) -> None:
    """Refuse a damaged JPEG. libjpeg fills a truncated or corrupt scan with grey and only
    warns, and Pillow drops the warning; libjpeg-turbo, strict, says it. The check decodes at
    1/8 scale: about 0.5 ms for a 500x375 photo, 0.2 s for 24 MP. Strict decoding stops at the
    first warning, so after a harmless one the rest of the file is left to Pillow unchecked."""
    try:
        colorspace = simplejpeg.decode_jpeg_header(data, strict=True)[2]
        simplejpeg.decode_jpeg(
            data, colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY", min_factor=8, strict=True
        )
    except ValueError as error:
        message = str(error)
        lowered = message.lower()
        if "extraneous bytes" in lowered or not any(words in lowered for words in _DATA_LOST):
            return  # a harmless warning, or a layout turbojpeg does not take (odd subsampling): Pillow decides
        raise ImageError(f"The JPEG is damaged or truncated and cannot be used ({message}).") from error


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
    if image.format not in JPEG_FORMATS and pixels > max(DENSE_PIXELS, MAX_PIXELS_PER_BYTE * size):
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
    return open_image(source, max_pixels=max_pixels, draft=draft)[0]


def open_image(
    source: bytes | str | Path | BinaryIO, *, max_pixels: int = MAX_PIXELS, draft: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`load_image`, with the upright picture's own width and height (before any ``draft``)."""
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
            _check_tiff_tags(data)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            original = image.size
            _check_size(*original, max_pixels)
            _check_density(image, len(data))
            _check_bmp(image, len(data))
            image.seek(0)
            decoder = _decoder_bytes(image, original)
            if draft and image.format in JPEG_FORMATS:
                image.draft("RGB", (draft, draft))
            factor, needed = _reduction(image, draft, decoder, original)  # before any decoding, the check's too
            with _HEAVY if needed > HEAVY_DECODE else contextlib.nullcontext():
                if image.format in JPEG_FORMATS:
                    _check_jpeg(data)
                image.load()
                reduced = _reduce(image, factor)
                upright = _upright(reduced)
            if upright.size != reduced.size:
                original = original[::-1]  # turned a quarter by its EXIF orientation
            return _to_rgb(upright), original
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
            batch.append(to_model_input(load_image(source, draft=image_size), image_size))
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
