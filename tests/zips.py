"""Zips the tests build: class folders, labels.csv data with five real labels, and bad ones."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mlcore import datasets

SHAPES = ("circle", "square", "triangle", "stripe", "cross")
# Label sets of the multi-label zip, cycled: two or three labels on some images, none on others.
TAG_SETS = (
    ("circle",),
    ("square",),
    ("triangle",),
    ("stripe",),
    ("cross",),
    ("circle", "square"),
    ("triangle", "stripe"),
    ("circle", "cross", "stripe"),
    (),
    ("square", "triangle", "cross"),
)


def jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def shapes_image(tags: tuple[str, ...], seed: int, size: int = 64) -> bytes:
    """A noisy picture holding one drawn shape per tag, at random places."""
    rng = np.random.default_rng(seed)
    background = rng.integers(90, 170, 3)
    canvas = np.clip(rng.normal(background, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for tag in tags:
        x, y = (int(v) for v in rng.integers(8, size - 24, 2))
        box = [x, y, x + 16, y + 16]
        if tag == "circle":
            draw.ellipse(box, fill=(230, 40, 40))
        elif tag == "square":
            draw.rectangle(box, fill=(30, 30, 220))
        elif tag == "triangle":
            draw.polygon([(x, y + 16), (x + 16, y + 16), (x + 8, y)], fill=(250, 250, 30))
        elif tag == "stripe":
            draw.rectangle([0, y, size, y + 4], fill=(20, 200, 60))
        else:
            draw.line([x, y, x + 16, y + 16], fill=(0, 0, 0), width=4)
            draw.line([x, y + 16, x + 16, y], fill=(0, 0, 0), width=4)
    return jpeg(np.asarray(image))


def write_zip(path: Path, members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def class_members(counts: dict[str, int], *, size: int = 48, prefix: str = "") -> dict[str, bytes]:
    """Class folders of generated demo pictures: cats and dogs where named so, else alternating."""
    members = {}
    for position, (name, count) in enumerate(counts.items()):
        demo = datasets.make_demo_set(2 * count, size, seed=position)
        is_dog = name.lower().startswith("dog")
        chosen = [i for i in range(2 * count) if bool(i % 2) == is_dog][:count]
        for i in chosen:
            members[f"{prefix}{name}/{name}.{i}.jpg"] = jpeg(demo.images[i])
    return members


def two_class_zip(path: Path, per_class: int = 40, **options) -> Path:
    return write_zip(path, class_members({"cats": per_class, "dogs": per_class}, **options))


def macos_zip(path: Path, per_class: int = 20) -> Path:
    """What "Compress" on macOS makes: one wrapping folder, __MACOSX/ resource forks, .DS_Store."""
    members = class_members({"cats": per_class, "dogs": per_class}, prefix="My Pets/")
    extra = {f"__MACOSX/My Pets/cats/._{Path(name).name}": b"\x00\x05\x16\x07 fork" for name in list(members)[:3]}
    extra["My Pets/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    extra["My Pets/cats/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    return write_zip(path, {**members, **extra})


def multilabel_members(count: int = 120, prefix: str = "") -> tuple[dict[str, bytes], np.ndarray]:
    """``count`` pictures with labels.csv over the five SHAPES, and the expected multi-hot tags."""
    members, rows, tags = {}, ["file,labels"], np.zeros((count, len(SHAPES)), np.uint8)
    for i in range(count):
        present = TAG_SETS[i % len(TAG_SETS)]
        name = f"img_{i:04d}.jpg"
        members[f"{prefix}{name}"] = shapes_image(present, seed=i)
        separator = ";" if i % 2 else "|"
        rows.append(f"{name},{separator.join(present)}")
        tags[i, [SHAPES.index(tag) for tag in present]] = 1
    members[f"{prefix}labels.csv"] = ("\n".join(rows) + "\n").encode()
    return members, tags


def multilabel_zip(path: Path, count: int = 120) -> tuple[Path, np.ndarray]:
    members, tags = multilabel_members(count)
    return write_zip(path, members), tags
