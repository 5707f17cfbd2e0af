"""Hostile and heavy pictures: damaged JPEGs are refused, and no format costs more than
``predict.DECODE_BUDGET`` to decode, measured as the peak resident memory of a fresh process."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlcore import predict

ROOT = Path(__file__).resolve().parents[2]
BUDGET_MB = predict.DECODE_BUDGET / 2**20
# A fresh process reads the file, resets its peak-memory mark (Linux: clear_refs 5), decodes,
# and reports how far its resident memory rose above where it stood.
DECODE_CHILD = """
import json, sys
from pathlib import Path
from mlcore import predict

def status(field):
    line = next(line for line in open("/proc/self/status") if line.startswith(field))
    return int(line.split()[1]) / 1024

data = Path(sys.argv[1]).read_bytes()
draft = int(sys.argv[2]) or None
with open("/proc/self/clear_refs", "w") as marks:
    marks.write("5")
before = status("VmRSS")
try:
    image = predict.load_image(data, draft=draft)
    outcome = "decoded %dx%d" % image.size
except predict.ImageError as error:
    outcome = str(error)
print(json.dumps({"peak_mb": status("VmHWM") - before, "outcome": outcome}))
"""


def measure(code: str, *args) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo_jpeg(size=(6600, 6000), *, progressive=False) -> bytes:
    y, x = np.mgrid[0:600, 0:660]
    pixels = np.stack([x % 256, y % 256, (3 * x + y) % 256], -1).astype(np.uint8)
    return encoded(Image.fromarray(pixels).resize(size), "JPEG", quality=60, progressive=progressive)


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc"
)


# --- damaged JPEGs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_truncated_jpeg_with_an_end_marker_is_refused_not_filled_in_with_grey(progressive):
    whole = photo_jpeg(progressive=progressive)
    assert predict.load_image(whole, draft=128).size[0] >= 128
    for kept in (0.5, 0.9):
        damaged = whole[: int(len(whole) * kept)] + b"\xff\xd9"  # cut, and closed again as a whole file is
        with pytest.raises(predict.ImageError, match="damaged or truncated"):
            predict.load_image(damaged, draft=128)
        with pytest.raises(predict.ImageError, match="damaged or truncated"):
            predict.load_image(damaged, draft=256)


def test_a_whole_jpeg_with_a_harmless_libjpeg_warning_still_loads():
    """An unknown JFIF revision makes libjpeg warn, strict libjpeg-turbo too; nothing is missing."""
    whole = photo_jpeg((660, 600))
    assert whole[6:11] == b"JFIF\x00"
    revised = whole[:11] + bytes([2, 1]) + whole[13:]  # JFIF 2.01
    assert np.array_equal(np.asarray(predict.load_image(revised)), np.asarray(predict.load_image(whole)))


def test_the_size_given_is_the_upright_pictures():
    """A phone photo stored sideways with EXIF orientation 6 is 40 wide and 60 high once upright."""
    exif = Image.Exif()
    exif[predict.ORIENTATION_TAG] = 6
    data = encoded(Image.new("RGB", (60, 40), (90, 120, 150)), "JPEG", exif=exif)
    image, size = predict.open_image(data, draft=16)
    assert size == (40, 60)
    assert image.width < image.height


def test_a_truncated_jpeg_without_an_end_marker_is_refused():
    whole = photo_jpeg((660, 600))
    with pytest.raises(predict.ImageError, match="damaged or truncated"):
        predict.load_image(whole[: len(whole) // 2])


def test_a_jpeg_with_stray_bytes_between_segments_still_loads():
    """libjpeg only warns about bytes it skips between markers; the picture itself is whole."""
    whole = photo_jpeg((660, 600))
    scan = whole.index(b"\xff\xda")
    padded = whole[:scan] + b"\x00\x00\x00" + whole[scan:]
    assert np.array_equal(np.asarray(predict.load_image(padded)), np.asarray(predict.load_image(whole)))


# --- memory per format ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forty_megapixels(tmp_path_factory) -> dict[str, Path]:
    """The formats that cost most per pixel, each at 40 MP (the limit) and small on disk."""
    folder = tmp_path_factory.mktemp("heavy")
    y, x = np.mgrid[0:5000, 0:8000]
    rgba = np.stack([x % 256, y % 256, (x + y) % 256, (x // 50) % 256], -1).astype(np.uint8)
    palette = Image.fromarray(rgba[..., :3]).quantize(64)
    pictures = {
        "grey16.png": encoded(Image.fromarray(((x * 8 + y) % 65536).astype(np.uint16)), "PNG"),
        "float.tif": encoded(
            Image.fromarray(((x // 16) % 97 * 0.37 + (y // 16) % 89 * 0.11).astype(np.float32), "F"),
            "TIFF",
            compression="tiff_adobe_deflate",
        ),
        "rgba.png": encoded(Image.fromarray(rgba, "RGBA"), "PNG"),
        "palette-transparent.png": encoded(palette, "PNG", transparency=0),
        "cmyk.jpg": encoded(Image.fromarray(rgba, "CMYK"), "JPEG", quality=30),
        "progressive.jpg": encoded(Image.fromarray(rgba[..., :3]), "JPEG", quality=30, progressive=True),
        "rgba-strip.png": encoded(Image.fromarray(rgba.reshape(-1, 4)[: 894 * 44_700].reshape(894, 44_700, 4)), "PNG"),
    }
    paths = {}
    for name, data in pictures.items():
        assert len(data) <= predict.MAX_BYTES
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


@needs_proc
@pytest.mark.parametrize(
    "name",
    ["grey16.png", "float.tif", "rgba.png", "palette-transparent.png", "cmyk.jpg", "progressive.jpg", "rgba-strip.png"],
)
def test_no_format_takes_more_than_the_budget_to_decode(forty_megapixels, name):
    """At the app's sizes (128 px for training and Predict's model input, 256 for its thumbnails) a 40 MP
    picture of any format decodes within the budget; at full size, the formats whose conversion would
    not fit are refused before decoding, with what it would take."""
    for draft in (128, 256):
        report = measure(DECODE_CHILD, forty_megapixels[name], draft)
        assert report["outcome"].startswith("decoded"), report
        assert report["peak_mb"] < BUDGET_MB, report
    report = measure(DECODE_CHILD, forty_megapixels[name], 0)
    assert report["outcome"].startswith("decoded") or f"over the {BUDGET_MB:.0f} MB allowed" in report["outcome"]
    assert report["peak_mb"] < BUDGET_MB, report


def test_a_long_thin_picture_that_cannot_be_reduced_enough_is_refused_before_decoding(forty_megapixels):
    """A 40 MP RGBA strip 894 px high cannot shrink by a whole factor at 512 px, and flattening its
    transparency at full size would take about 900 MB."""
    with pytest.raises(predict.ImageError, match="MB allowed per image"):
        predict.load_image(forty_megapixels["rgba-strip.png"].read_bytes(), draft=512)


# --- the Predict page's uploads ----------------------------------------------------------------------------

SCORE_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from app import runs, uploads
from mlcore import model, predict

def status(field):
    line = next(line for line in open("/proc/self/status") if line.startswith(field))
    return int(line.split()[1]) / 1024

network = model.build_model((128, 128, 3), 3, architecture="seed")
predict.predict_proba(network, np.zeros((uploads.SCORE_BATCH, 128, 128, 3), np.uint8))  # traced once, as in the app
run = runs.Run(
    model_ref=runs.ModelRef(network), label_names=("dog", "cat", "indoor"), image_size=128, source="trained",
    title="t", metadata={},
)
files = [(path.name, path.read_bytes()) for path in sorted(Path(sys.argv[1]).iterdir())]
with open("/proc/self/clear_refs", "w") as marks:
    marks.write("5")
before = status("VmRSS")
results = uploads.score(run, files, {})
print(json.dumps({
    "peak_mb": status("VmHWM") - before,
    "scored": sum(result.probabilities is not None for result in results),
    "sizes": sorted({result.size for result in results}),
}))
"""


@needs_proc
def test_sixteen_big_pngs_are_decoded_and_dropped_one_at_a_time(tmp_path):
    """Sixteen 6300x6300 PNGs of about 100 KB each are 2.5 GB of pixels once decoded; the page
    decodes, shrinks and drops them one by one."""
    y, x = np.mgrid[0:6300, 0:6300]
    png = encoded(Image.fromarray(np.stack([x % 256, y % 256, (x // 25) % 256], -1).astype(np.uint8)), "PNG")
    for index in range(16):  # sixteen different files (a byte after the end), each scored
        (tmp_path / f"big{index:02d}.png").write_bytes(png + bytes([index]))
    report = measure(SCORE_CHILD, tmp_path)
    assert report["scored"] == 16
    assert report["sizes"] == [[6300, 6300]], "the card shows the picture's own size"
    assert report["peak_mb"] < BUDGET_MB, report


# --- tags, containers and decoders that cost more than the picture ---------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def tiff_bytes(width: int, height: int, bits: tuple[int, ...], photometric: int, strip: bytes, *extra) -> bytes:
    """A little-endian TIFF of one deflated strip; ``extra`` entries are ``(tag, type, count, value bytes)``."""
    packed = zlib.compress(strip, 9)
    entries = [
        (256, 4, 1, struct.pack("<I", width)),
        (257, 4, 1, struct.pack("<I", height)),
        (258, 3, len(bits), struct.pack(f"<{len(bits)}H", *bits)),
        (259, 3, 1, struct.pack("<H", 8)),
        (262, 3, 1, struct.pack("<H", photometric)),
        (273, 4, 1, struct.pack("<I", 8)),
        (277, 3, 1, struct.pack("<H", len(bits))),
        (278, 4, 1, struct.pack("<I", height)),
        (279, 4, 1, struct.pack("<I", len(packed))),
        *extra,
    ]
    body, tail = bytearray(b"II*\x00\x00\x00\x00\x00" + packed), bytearray()
    area = len(body)
    values = [value for *_, value in sorted(entries)]
    directory_at = area + sum(len(value) + len(value) % 2 for value in values if len(value) > 4)
    fields = []
    for tag, kind, count, value in sorted(entries):
        if len(value) > 4:
            fields.append(struct.pack("<HHII", tag, kind, count, area + len(tail)))
            tail += value + b"\x00" * (len(value) % 2)
        else:
            fields.append(struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00"))
    body[4:8] = struct.pack("<I", directory_at)
    return bytes(body + tail + struct.pack("<H", len(fields)) + b"".join(fields) + b"\x00\x00\x00\x00")


@needs_proc
def test_a_png_whose_exif_holds_millions_of_values_loads_without_reading_them(tmp_path):
    """An Orientation tag of three million fractions: Pillow would unpack each (12 s, 510 MB)."""
    count = 3_000_000
    exif = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x112, 5, count, 26) + b"\x00" * 4
    exif += struct.pack("<II", 3, 1) * count
    plain = encoded(Image.new("RGB", (64, 48), (200, 10, 10)), "PNG")
    (tmp_path / "exif.png").write_bytes(plain[:-12] + png_chunk(b"eXIf", exif) + plain[-12:])
    report = measure(DECODE_CHILD, tmp_path / "exif.png", 128)
    assert report["outcome"] == "decoded 64x48", "shown as stored: its orientation is not read"
    assert report["peak_mb"] < 60, report


def test_a_tiff_tag_of_millions_of_values_is_refused_unread():
    resolutions = struct.pack("<II", 72, 1) * 3_000_000
    data = tiff_bytes(64, 48, (8,), 1, bytes(64 * 48), (282, 5, 3_000_000, resolutions))
    with pytest.raises(predict.ImageError, match="tag 282 holds 24,000,000 bytes"):
        predict.load_image(data, draft=128)


@pytest.mark.parametrize(
    ("bits", "photometric", "mode"),
    [((16, 16, 16), 2, "RGB"), ((16, 16, 16, 16), 5, "CMYK")],
    ids=["rgb16", "cmyk16"],
)
def test_a_single_strip_sixteen_bit_tiff_counts_libtiffs_strip_buffer(bits, photometric, mode):
    """Pillow reports these as 8-bit modes, but libtiff first holds the whole 16-bit strip."""
    data = tiff_bytes(8000, 5000, bits, photometric, bytes(8000 * 5000 * len(bits) * 2))
    with pytest.raises(predict.ImageError, match=f"8000x5000 pixels in {mode} mode.*MB allowed per image"):
        predict.load_image(data, draft=128)
    smaller = tiff_bytes(2000, 1500, bits, photometric, bytes(2000 * 1500 * len(bits) * 2))
    assert predict.load_image(smaller, draft=128).size == (400, 300), "reduced by 5, to twice 128 or more"


def test_a_40_mp_webp_padded_past_the_density_check_is_refused_for_its_decoders_canvases():
    webp = encoded(Image.new("RGB", (8000, 5000), (10, 200, 30)), "WEBP", lossless=True)
    with pytest.raises(predict.ImageError, match="MB allowed per image"):
        predict.load_image(webp + b"\x00" * 45_000, draft=128)
    assert predict.load_image(encoded(Image.new("RGB", (3000, 2000), (10, 200, 30)), "WEBP"), draft=128)


@needs_proc
def test_a_progressive_cmyk_jpeg_is_refused_from_its_header_before_any_coefficient_is_held(tmp_path):
    """libjpeg holds every coefficient of a progressive JPEG, 8 bytes per pixel in 4:4:4 CMYK: a
    339-byte cut of one cost 459 MB before it was refused."""
    pixels = np.random.default_rng(0).integers(0, 256, (500, 800, 4), np.uint8)
    big = Image.fromarray(pixels, "CMYK").resize((8000, 5000), Image.Resampling.NEAREST)
    data = encoded(big, "JPEG", quality=30, subsampling=0, progressive=True)
    scan = data.index(b"\xff\xda")
    (tmp_path / "cut.jpg").write_bytes(data[: scan + 200] + b"\xff\xd9")
    report = measure(DECODE_CHILD, tmp_path / "cut.jpg", 128)
    assert "8000x5000 pixels in CMYK mode" in report["outcome"], report
    assert "MB allowed per image" in report["outcome"], report
    assert report["peak_mb"] < 30, report


def test_a_truncated_multi_picture_jpeg_is_refused_like_a_jpeg():
    """A JPEG with a multi-picture index opens as "MPO"; it is checked and drafted all the same."""
    first = Image.fromarray(np.asarray(Image.open(io.BytesIO(photo_jpeg((660, 600))))))
    data = encoded(first, "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert predict.load_image(data, draft=128).size == (165, 150), "drafted to a quarter, as a JPEG is"
    scan = data.index(b"\xff\xda")
    with pytest.raises(predict.ImageError, match="damaged or truncated"):
        predict.load_image(data[: scan + (len(data) - scan) // 3] + b"\xff\xd9")


def test_a_big_run_length_bmp_is_refused_before_pythons_decoder_runs():
    width, height = 44_700, 894
    body = b"\x01\x07\x00\x00" * height + b"\x00\x01"  # each row: one pixel, then end of line
    palette = bytes(1024)
    offset = 14 + 40 + len(palette)
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    data = b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + header + palette + body
    with pytest.raises(predict.ImageError, match="Run-length compressed BMPs are accepted up to 4 megapixels"):
        predict.load_image(data + b"\x00" * 36_000, draft=128)
