"""Every awkward kind of upload, generated here."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mlcore.predict import ImageError, load_image, to_model_input


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_exif_orientation_is_applied():
    # A 40x20 landscape stored with orientation 6 (rotate 90 CW to display) shows as 20x40.
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(_encode(image, "JPEG", exif=exif))
    assert loaded.size == (20, 40)
    assert loaded.mode == "RGB"


def test_grayscale_becomes_three_equal_channels():
    loaded = load_image(_encode(Image.new("L", (8, 8), 77), "PNG"))
    assert loaded.mode == "RGB"
    assert np.asarray(loaded)[0, 0].tolist() == [77, 77, 77]


def test_rgba_transparency_is_white_not_black():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.putpixel((0, 0), (10, 20, 30, 255))
    pixels = np.asarray(load_image(_encode(image, "PNG")))
    assert pixels[0, 0].tolist() == [10, 20, 30]
    assert pixels[5, 5].tolist() == [255, 255, 255]


def test_palette_with_transparency():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 250, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    pixels = np.asarray(load_image(_encode(image, "PNG", transparency=0)))
    assert pixels[1, 1].tolist() == [250, 0, 0]
    assert pixels[4, 4].tolist() == [255, 255, 255]


def test_cmyk_jpeg():
    loaded = load_image(_encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    red = np.asarray(loaded)[4, 4]
    assert loaded.mode == "RGB"
    assert red[0] > 200
    assert red[1] < 60
    assert red[2] < 60


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    array = np.full((8, 8), 65535, dtype=np.uint16)
    array[0, 0] = 0
    loaded = np.asarray(load_image(_encode(Image.fromarray(array), "PNG")))
    assert loaded[4, 4].tolist() == [255, 255, 255]
    assert loaded[0, 0].tolist() == [0, 0, 0]


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    pixel = np.asarray(load_image(data))[4, 4]
    assert pixel[0] > 200
    assert pixel[2] < 50


def test_webp_and_bmp_load():
    for fmt in ("WEBP", "BMP"):
        assert load_image(_encode(Image.new("RGB", (10, 6), (0, 128, 0)), fmt)).size == (10, 6)


def test_non_image_empty_truncated_are_refused_with_specific_messages():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageError, match="Not a supported image"):
        load_image(b"%PDF-1.4 this is a document")
    jpeg = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(jpeg[: len(jpeg) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    # A valid PNG header that claims 30,000 x 30,000 pixels: 900 million, far over the limit.
    header = _encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">II", 30000, 30000) + header[24:29]
    bomb = header[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + header[33:]
    with pytest.raises(ImageError, match="too many pixels"):
        load_image(bomb)
    # Under Pillow's own bomb limit but over ours: refused from the header, never decoded.
    ihdr = struct.pack(">II", 8000, 8000) + header[24:29]
    large = header[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + header[33:]
    with pytest.raises(ImageError, match="8000x8000 pixels; the limit is 40,000,000"):
        load_image(large)
    with pytest.raises(ImageError, match="limit"):
        load_image(_encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=5000)


def test_model_input_is_square_uint8():
    array = to_model_input(Image.new("RGB", (500, 375), (1, 2, 3)), 128)
    assert array.shape == (128, 128, 3)
    assert array.dtype == np.uint8
    assert array[0, 0].tolist() == [1, 2, 3]


def _exif_with_bad_strip_offsets() -> bytes:
    """EXIF with orientation 6 and a StripOffsets tag typed ASCII (rewriting it raises struct.error)."""
    entries = [(0x0111, 2, 4, b"cam\x00"), (0x0112, 3, 1, struct.pack(">HH", 6, 0))]
    ifd = (
        struct.pack(">H", len(entries))
        + b"".join(struct.pack(">HHI", tag, kind, count) + value for tag, kind, count, value in entries)
        + b"\0\0\0\0"
    )
    return b"Exif\x00\x00MM\x00\x2a" + struct.pack(">I", 8) + ifd


def test_a_malformed_exif_block_still_gives_an_upright_picture():
    loaded = load_image(_encode(Image.new("RGB", (40, 20), "red"), "JPEG", exif=_exif_with_bad_strip_offsets()))
    assert loaded.size == (20, 40)


def _tiff_with_float_strip_offsets() -> bytes:
    width = height = 4
    count = 10
    data_at = 8 + 2 + 12 * count + 4
    entries = [
        (256, 3, 1, struct.pack("<HH", width, 0)),
        (257, 3, 1, struct.pack("<HH", height, 0)),
        (258, 3, 1, struct.pack("<HH", 8, 0)),
        (259, 3, 1, struct.pack("<HH", 1, 0)),
        (262, 3, 1, struct.pack("<HH", 1, 0)),
        (273, 12, 1, struct.pack("<I", data_at + 16)),
        (277, 3, 1, struct.pack("<HH", 1, 0)),
        (278, 3, 1, struct.pack("<HH", height, 0)),
        (279, 4, 1, struct.pack("<I", 16)),
        (284, 3, 1, struct.pack("<HH", 1, 0)),
    ]
    ifd = (
        struct.pack("<H", count)
        + b"".join(struct.pack("<HHI", tag, kind, n) + value for tag, kind, n, value in entries)
        + b"\0" * 4
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x80" * 16 + struct.pack("<d", data_at + 0.5)


def test_a_tiff_with_float_offsets_is_refused_not_raised():
    with pytest.raises(ImageError):
        load_image(_tiff_with_float_strip_offsets())


def test_a_jpeg_scan_flood_is_refused_before_decoding():
    base = _encode(Image.new("L", (64, 64), 128), "JPEG", progressive=True)
    empty_scan = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x03" + bytes([1, 63, 0]) + b"\x00"
    flood = base[:-2] + empty_scan * 200 + b"\xff\xd9"
    with pytest.raises(ImageError, match="more than 100 scans"):
        load_image(flood)
    assert load_image(base).size == (64, 64), "an ordinary progressive JPEG still loads"


@pytest.mark.parametrize(("refused", "accepted"), [((1, 51), (1, 50)), ((3000, 20), (2000, 40))])
def test_degenerate_shapes_are_refused(refused, accepted):
    with pytest.raises(ImageError, match="50 times"):
        load_image(_encode(Image.new("RGB", refused), "PNG"))
    assert load_image(_encode(Image.new("RGB", accepted), "PNG")).size == accepted
