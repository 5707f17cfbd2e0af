"""Image sources behind one interface: the real dataset, a local folder, a demo set.

Every source yields an :class:`ImageSet`: uint8 images of one square size plus
class indices. Decoding runs in parallel threads (Pillow releases the GIL while
it decodes) and uses JPEG draft mode, and decoded arrays are cached on disk under
a key made from the exact file set and image size.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mlcore import config as cfg
from mlcore.labels import label_names, make_targets

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
CACHE_VERSION = 2


class DatasetUnavailable(RuntimeError):
    """The requested dataset cannot be had; the message says what to do instead."""


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSet:
    """Decoded images with their classes.

    ``keys`` identify each image stably (relative path, or a demo id) so labels
    drawn per image do not depend on order. ``skipped`` counts unreadable files.
    """

    images: np.ndarray
    class_index: np.ndarray
    class_names: tuple[str, ...]
    keys: tuple[str, ...]
    skipped: int = 0
    skipped_files: tuple[str, ...] = ()
    synthetic: bool = False
    origin: str = ""

    def __len__(self) -> int:
        return len(self.class_index)

    def take(self, indices: np.ndarray) -> ImageSet:
        """The subset at ``indices``, keeping names and provenance."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            images=self.images[indices],
            class_index=self.class_index[indices],
            keys=tuple(self.keys[i] for i in indices),
        )


def list_image_files(root: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """Class names (sorted subfolders) and ``(path, class_index)`` for every image file."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetUnavailable(f"Folder not found: {root}")
    class_names = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not class_names:
        raise DatasetUnavailable(
            f"{root} has no class subfolders; expected one subfolder per class (e.g. cats/, dogs/)."
        )
    files = [
        (path, index)
        for index, name in enumerate(class_names)
        for path in sorted((root / name).rglob("*"))
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise DatasetUnavailable(f"{root} contains no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return class_names, files


def decode_file(path: Path, image_size: int) -> np.ndarray | None:
    """Decode and resize one image to ``(size, size, 3)`` uint8, or ``None`` if unreadable."""
    try:
        with Image.open(path) as image:
            # Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale directly.
            image.draft("RGB", (image_size, image_size))
            image = image.convert("RGB")
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None


def _decode_many(paths: list[Path], image_size: int) -> list[np.ndarray | None]:
    workers = max(1, min(8, (os.cpu_count() or 1) * 2))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: decode_file(p, image_size), paths, chunksize=16))


def _cache_key(root: Path, files: list[tuple[Path, int]], image_size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{image_size}|{root.resolve()}".encode())
    for path, index in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{index}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _atomic_write(target: Path, write) -> None:
    """Write through a temp file in the same folder, then rename: never a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_folder(root: Path | str, image_size: int = 128, *, use_cache: bool = True) -> ImageSet:
    """Load a folder in ``image_dataset_from_directory`` layout, with a disk cache."""
    root = Path(root).expanduser()
    class_names, files = list_image_files(root)
    key = _cache_key(root, files, image_size)
    cache_images = cfg.cache_dir() / f"{key}.npy"
    cache_meta = cache_images.with_suffix(".json")
    if use_cache and cache_images.exists() and cache_meta.exists():
        try:
            meta = json.loads(cache_meta.read_text())
            images = np.load(cache_images, allow_pickle=False)
            class_index = np.asarray(meta["class_index"], dtype=np.int32)
            if len(images) != len(class_index):
                raise ValueError("cache entries disagree")
            skipped_files = tuple(meta["skipped_files"])
            return ImageSet(
                images,
                class_index,
                tuple(meta["class_names"]),
                tuple(meta["keys"]),
                len(skipped_files),
                skipped_files,
                origin=str(root),
            )
        except (OSError, ValueError, KeyError):
            cache_images.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    decoded = _decode_many([path for path, _ in files], image_size)
    good = [i for i, array in enumerate(decoded) if array is not None]
    skipped_files = tuple(str(files[i][0].relative_to(root)) for i, a in enumerate(decoded) if a is None)
    images = np.stack([decoded[i] for i in good]) if good else np.zeros((0, image_size, image_size, 3), np.uint8)
    class_index = np.array([files[i][1] for i in good], dtype=np.int32)
    keys = tuple(files[i][0].relative_to(root).as_posix() for i in good)
    if use_cache:
        meta = {
            "class_names": class_names,
            "keys": keys,
            "skipped_files": skipped_files,
            "class_index": class_index.tolist(),
        }
        # Images last: the .npy only appears once its metadata is already in place.
        _atomic_write(cache_meta, lambda stream: stream.write(json.dumps(meta).encode()))
        _atomic_write(cache_images, lambda stream: np.save(stream, images, allow_pickle=False))
    return ImageSet(images, class_index, class_names, keys, len(skipped_files), skipped_files, origin=str(root))


def stratified_subset(image_set: ImageSet, n_images: int | None, seed: int) -> ImageSet:
    """At most ``n_images`` images, drawn with ``seed`` in proportion to each class."""
    if n_images is None or n_images >= len(image_set):
        return image_set
    indices = stratified_split_indices(image_set.class_index, n_images / len(image_set), seed)[1]
    return image_set.take(np.sort(indices))


def stratified_split_indices(class_index: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into ``(rest, part)`` where ``part`` holds ``fraction`` of each class."""
    rng = np.random.default_rng(seed)
    rest, part = [], []
    for value in np.unique(class_index):
        members = rng.permutation(np.flatnonzero(class_index == value))
        count = int(round(len(members) * fraction))
        part.append(members[:count])
        rest.append(members[count:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(part))


# --- the real dataset -------------------------------------------------------------------


def _looks_extracted(path: Path) -> bool:
    return all((path / split / name).is_dir() for split, names in cfg.DATASET_COUNTS.items() for name in names)


def find_real_dataset(data_dir: Path | str | None = None) -> Path | None:
    """An already-extracted copy: in ``data_dir`` (or ``MLCORE_DATA_DIR``), then Keras' cache."""
    candidates = []
    explicit = Path(data_dir).expanduser() if data_dir else cfg.default_data_dir()
    if explicit is not None:
        candidates += [explicit / cfg.DATASET_NAME, explicit]
    datasets = cfg.keras_home() / "datasets"
    candidates += [
        datasets / f"{cfg.DATASET_NAME}_extracted" / cfg.DATASET_NAME,
        datasets / cfg.DATASET_NAME,
    ]
    return next((path for path in candidates if _looks_extracted(path)), None)


def verify_extracted(path: Path) -> None:
    """Raise :class:`DatasetUnavailable` unless every split holds the expected JPEG count."""
    for split, classes in cfg.DATASET_COUNTS.items():
        for name, expected in classes.items():
            found = len(list((path / split / name).glob("*.jpg")))
            if found != expected:
                raise DatasetUnavailable(
                    f"{path / split / name} holds {found} JPEGs, expected {expected}: the copy is incomplete."
                )


OFFLINE_HINT = (
    f"If you are offline, point {cfg.DATA_DIR_ENV} (or --data-dir) at a folder containing "
    f"{cfg.DATASET_NAME}/, use any local folder with one subfolder per class, or use the generated demo set."
)


def check_reachable(url: str, timeout: float = 10.0) -> None:
    """Raise :class:`DatasetUnavailable` unless ``url`` answers within ``timeout`` seconds.

    Runs in a thread because a name lookup on a machine without network can hang far
    longer than any socket timeout, and ``keras.utils.get_file`` sets none.
    """
    import threading
    import urllib.request

    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome.append(None)
        except BaseException as error:  # reported to the caller below
            outcome.append(error)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise DatasetUnavailable(f"No answer from {url} within {timeout:.0f} s. {OFFLINE_HINT}")
    if outcome[0] is not None:
        raise DatasetUnavailable(f"Could not reach {url} ({outcome[0]}). {OFFLINE_HINT}")


def download_real_dataset() -> Path:
    """Download (with Keras' progress bar), check and extract the archive into Keras' cache, once."""
    import keras  # deferred: importing Keras costs seconds and most callers never download

    datasets = cfg.keras_home() / "datasets"
    target = datasets / f"{cfg.DATASET_NAME}_extracted"
    archive_path = datasets / f"{cfg.DATASET_NAME}.zip"
    if not archive_path.exists():
        check_reachable(cfg.DATASET_URL)
    try:
        archive = Path(
            keras.utils.get_file(
                f"{cfg.DATASET_NAME}.zip",
                origin=cfg.DATASET_URL,
                cache_dir=str(cfg.keras_home()),
                extract=False,
            )
        )
    except Exception as error:  # Keras raises bare Exception subclasses for URL failures
        raise DatasetUnavailable(
            f"Could not download {cfg.DATASET_NAME} from {cfg.DATASET_URL} ({error}). {OFFLINE_HINT}"
        ) from error
    size = archive.stat().st_size
    if size != cfg.DATASET_ARCHIVE_BYTES:
        archive.unlink(missing_ok=True)
        raise DatasetUnavailable(
            f"The downloaded archive has {size:,} bytes, expected {cfg.DATASET_ARCHIVE_BYTES:,}: "
            "it was truncated or altered and has been deleted. Try again."
        )
    staging = Path(tempfile.mkdtemp(dir=datasets, prefix=".extract-"))
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)
        verify_extracted(staging / cfg.DATASET_NAME)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        os.replace(staging / cfg.DATASET_NAME, target / cfg.DATASET_NAME)
    except (zipfile.BadZipFile, DatasetUnavailable) as error:
        archive.unlink(missing_ok=True)
        raise DatasetUnavailable(f"The downloaded archive is damaged and has been deleted: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / cfg.DATASET_NAME


def resolve_real_dataset(data_dir: Path | str | None = None, *, download: bool = True) -> Path:
    """Path of an extracted ``cats_and_dogs_filtered``: local copy first, else download."""
    found = find_real_dataset(data_dir)
    if found is not None:
        return found
    if not download:
        raise DatasetUnavailable(
            f"No local copy of {cfg.DATASET_NAME} found (looked in {data_dir or cfg.DATA_DIR_ENV} "
            f"and {cfg.keras_home() / 'datasets'}). Download it, use a local folder, or use the demo set."
        )
    return download_real_dataset()


# --- the generated demo set --------------------------------------------------------------

DEMO_CLASSES = ("cats", "dogs")


def _draw_animal(rng: np.random.Generator, size: int, is_dog: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic cartoon and the mask of where the animal is (head, ears, muzzle, whiskers).

    Cats have pointed upright ears and whiskers, dogs floppy hanging ears, a long
    muzzle and a tongue. Colours, pose and background vary. ``is_dog=None`` draws
    the background and its clutter only: a scene with no animal.
    """
    scale = 2  # draw large, then downsample: smooth edges at any image size
    canvas = size * scale
    background = tuple(int(v) for v in rng.integers(60, 230, 3))
    image = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(image)
    mask = Image.new("L", (canvas, canvas), 0)
    outline = ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(2, 6))):  # clutter so the background carries no signal
        x0, y0 = rng.integers(0, canvas, 2)
        radius = int(rng.integers(canvas // 20, canvas // 6))
        tint = tuple(int(v) for v in rng.integers(40, 250, 3))
        draw.rectangle([x0 - radius, y0 - radius, x0 + radius, y0 + radius], fill=tint)
    if is_dog is None:
        return _finish(image, mask, rng, size)
    radius = canvas * rng.uniform(0.2, 0.28)
    cx = canvas * rng.uniform(0.38, 0.62)
    cy = canvas * rng.uniform(0.42, 0.6)
    fur = tuple(int(v) for v in rng.integers(30, 230, 3))
    dark = tuple(max(0, c - 70) for c in fur)
    if is_dog:
        for side in (-1, 1):  # floppy ears hanging beside the head
            ex = cx + side * radius * 0.95
            ear = [ex - radius * 0.35, cy - radius * 0.6, ex + radius * 0.35, cy + radius * 0.9]
            draw.ellipse(ear, fill=dark)
            outline.ellipse(ear, fill=255)
    else:
        for side in (-1, 1):  # pointed ears on top
            base = cx + side * radius * 0.55
            ear = [
                (base - radius * 0.4, cy - radius * 0.6),
                (base + radius * 0.4, cy - radius * 0.6),
                (base + side * radius * 0.15, cy - radius * 1.55),
            ]
            draw.polygon(ear, fill=fur)
            outline.polygon(ear, fill=255)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fur)
    outline.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
    eye = radius * 0.12
    for side in (-1, 1):
        ex, ey = cx + side * radius * 0.38, cy - radius * 0.2
        if is_dog:
            draw.ellipse([ex - eye, ey - eye, ex + eye, ey + eye], fill=(20, 20, 20))
        else:  # slit pupils
            draw.ellipse([ex - eye, ey - eye * 1.3, ex + eye, ey + eye * 1.3], fill=(200, 210, 60))
            draw.rectangle([ex - eye * 0.25, ey - eye * 1.2, ex + eye * 0.25, ey + eye * 1.2], fill=(10, 10, 10))
    if is_dog:
        muzzle = (min(255, fur[0] + 50), min(255, fur[1] + 50), min(255, fur[2] + 50))
        draw.ellipse([cx - radius * 0.45, cy + radius * 0.05, cx + radius * 0.45, cy + radius * 0.85], fill=muzzle)
        draw.ellipse([cx - radius * 0.16, cy + radius * 0.1, cx + radius * 0.16, cy + radius * 0.32], fill=(15, 15, 15))
        tongue = [cx - radius * 0.12, cy + radius * 0.7, cx + radius * 0.12, cy + radius * 1.05]
        draw.ellipse(tongue, fill=(220, 60, 90))
        outline.ellipse(tongue, fill=255)
    else:
        draw.polygon(
            [(cx - radius * 0.1, cy + radius * 0.15), (cx + radius * 0.1, cy + radius * 0.15), (cx, cy + radius * 0.3)],
            fill=(230, 120, 140),
        )
        for side in (-1, 1):
            for tilt in (-0.12, 0.0, 0.12):
                whisker = [
                    (cx + side * radius * 0.2, cy + radius * 0.35),
                    (cx + side * radius * 1.1, cy + radius * (0.3 + tilt)),
                ]
                draw.line(whisker, fill=(240, 240, 240), width=max(1, scale))
                outline.line(whisker, fill=255, width=4 * scale)
    return _finish(image, mask, rng, size)


def _finish(
    image: Image.Image, mask: Image.Image, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flip half of the drawings, soften, downsample and add noise; the mask follows the picture."""
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        mask = mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.filter(ImageFilter.GaussianBlur(image.width / size * 0.5)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    array = np.asarray(image, dtype=np.int16) + rng.normal(0, 8, (size, size, 3)).astype(np.int16)
    region = np.asarray(mask.resize((size, size), Image.Resampling.BILINEAR)) >= 128
    return np.clip(array, 0, 255).astype(np.uint8), region


def _demo_image(seed: int, index: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    return _draw_animal(np.random.default_rng([seed, index]), image_size, bool(index % 2))


def demo_scenes(n_images: int, image_size: int = 128, seed: int = 0) -> np.ndarray:
    """Backgrounds drawn like :func:`make_demo_set`'s, with no animal: uint8 ``(n, size, size, 3)``."""
    return np.stack([_draw_animal(np.random.default_rng([seed, i, 1]), image_size, None)[0] for i in range(n_images)])


def demo_masks(n_images: int, image_size: int = 128, seed: int = 0) -> np.ndarray:
    """Where :func:`make_demo_set` drew each animal (head, ears, muzzle): boolean ``(n, size, size)``.
    The generator knows, so tests can check what an explanation points at."""
    return np.stack([_demo_image(seed, i, image_size)[1] for i in range(n_images)])


def make_demo_set(n_images: int, image_size: int = 128, seed: int = 0) -> ImageSet:
    """A deterministic, clearly synthetic cats-and-dogs set that a CNN can learn."""
    if n_images < 2:
        raise ValueError(f"n_images must be at least 2, got {n_images}")
    class_index = np.arange(n_images, dtype=np.int32) % 2
    images = np.stack([_demo_image(seed, i, image_size)[0] for i in range(n_images)])
    keys = tuple(f"demo-{seed}/{DEMO_CLASSES[c]}/{i:05d}" for i, c in enumerate(class_index))
    return ImageSet(images, class_index, DEMO_CLASSES, keys, synthetic=True, origin="synthetic demo set")


# --- splits with multi-label targets ---------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """Images, their multi-label targets and stable keys."""

    images: np.ndarray
    targets: np.ndarray
    keys: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.targets)


@dataclasses.dataclass(frozen=True, eq=False)
class Splits:
    """Train / validation (monitoring) / test (held out) with their provenance."""

    train: Split
    validation: Split
    test: Split
    label_names: tuple[str, ...]
    class_names: tuple[str, ...]
    synthetic: bool
    origin: str
    skipped_files: tuple[str, ...] = ()

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def _prefixed(image_set: ImageSet, prefix: str) -> ImageSet:
    return dataclasses.replace(
        image_set,
        keys=tuple(f"{prefix}/{key}" for key in image_set.keys),
        skipped_files=tuple(f"{prefix}/{name}" for name in image_set.skipped_files),
    )


def _to_split(image_set: ImageSet, config: cfg.DataConfig) -> Split:
    targets = make_targets(
        image_set.class_index,
        image_set.class_names,
        image_set.keys,
        indoor_probability=config.indoor_probability,
        seed=config.seed,
    )
    return Split(image_set.images, targets, image_set.keys)


def _source_sets(config: cfg.DataConfig) -> tuple[ImageSet, ImageSet]:
    """The training pool and the held-out test set for a config's source."""
    if config.source == "real":
        root = resolve_real_dataset(config.data_dir)
        pool = _prefixed(load_folder(root / "train", config.image_size), "train")
        test = _prefixed(load_folder(root / "validation", config.image_size), "validation")
        return pool, test
    if config.source == "folder":
        everything = load_folder(config.folder, config.image_size)
    else:
        everything = make_demo_set(config.demo_images, config.image_size, config.seed)
    if len(everything) < 4:
        raise DatasetUnavailable(f"{everything.origin} has only {len(everything)} readable images; need at least 4.")
    rest, test = stratified_split_indices(everything.class_index, config.test_fraction, config.seed)
    return everything.take(rest), everything.take(test)


def load_splits(config: cfg.DataConfig) -> Splits:
    """Load a config's source, subset the pool, split off validation, and label everything."""
    pool, test = _source_sets(config)
    pool = stratified_subset(pool, config.n_images, config.seed)
    train_idx, val_idx = stratified_split_indices(pool.class_index, config.validation_fraction, config.seed + 1)
    return Splits(
        train=_to_split(pool.take(train_idx), config),
        validation=_to_split(pool.take(val_idx), config),
        test=_to_split(test, config),
        label_names=label_names(pool.class_names),
        class_names=pool.class_names,
        synthetic=pool.synthetic,
        origin=pool.origin if config.source != "real" else str(Path(pool.origin).parent),
        # Pool and test may come from one folder and so carry the same skipped list.
        skipped_files=tuple(dict.fromkeys(pool.skipped_files + test.skipped_files)),
    )


def notebook_splits(config: cfg.DataConfig, n_images: int = 320) -> Splits:
    """The notebook's protocol: 10 batches of 32 training images, an 80/20
    ``train_test_split(random_state=42)``, then Keras' ``validation_split=0.1``
    (the last 10% of the training part, unshuffled)."""
    from sklearn.model_selection import train_test_split

    pool, _ = _source_sets(config)
    rng = np.random.default_rng(config.seed)
    chosen = pool.take(np.sort(rng.choice(len(pool), size=min(n_images, len(pool)), replace=False)))
    labelled = _to_split(chosen, config)
    order = np.arange(len(labelled))
    train_idx, test_idx = train_test_split(order, test_size=0.2, random_state=42)
    split_at = int(np.ceil(len(train_idx) * 0.9))

    def part(indices: np.ndarray) -> Split:
        return Split(labelled.images[indices], labelled.targets[indices], tuple(labelled.keys[i] for i in indices))

    return Splits(
        train=part(train_idx[:split_at]),
        validation=part(train_idx[split_at:]),
        test=part(test_idx),
        label_names=label_names(pool.class_names),
        class_names=pool.class_names,
        synthetic=pool.synthetic,
        origin=pool.origin,
        skipped_files=pool.skipped_files,
    )
