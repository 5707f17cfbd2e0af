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
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mlcore import archives, arrays, store
from mlcore import config as cfg
from mlcore.labels import (
    ANNOTATION_FILE,
    CLASS_ALIASES,
    MAX_LABELS,
    MIN_LABEL_IMAGES,
    RANDOM_LABEL,
    AnnotationError,
    Annotations,
    label_name_problems,
    label_names,
    make_targets,
    rare_labels,
    read_annotations,
    stratification_groups,
    tag_targets,
)
from mlcore.predict import ImageError, load_image, to_model_input

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CACHE_VERSION = 4  # 4: images in a flat uint8 file read a batch at a time
MIN_CLASS_IMAGES = MIN_LABEL_IMAGES
MAX_CLASSES = MAX_LABELS - 1  # class folders also get the random indoor tag
DECODE_CHUNK_FILES, DECODE_CHUNK_BYTES = 64, 64 * 2**20
MAX_DECODED_BYTES = 400 * 2**20  # an uploaded zip's images once decoded (a cache file on the server's disk)


class DatasetUnavailable(RuntimeError):
    """The requested dataset cannot be had; the message says what to do instead."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """Files or rows left out of a dataset, and why: ``what`` reads after a count."""

    what: str
    names: tuple[str, ...]

    def sentence(self, shown: int = 5) -> str:
        listed = ", ".join(self.names[:shown]) + ("…" if len(self.names) > shown else "")
        return f"{len(self.names):,} {self.what}: {listed}"


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSet:
    """Decoded images with their classes, or with real labels from labels.csv.

    ``keys`` identify each image stably (relative path, or a demo id) so labels
    drawn per image do not depend on order. ``skipped`` counts unreadable files.
    With labels.csv data, ``tags`` is multi-hot over ``class_names`` (the CSV's
    labels) and ``class_index`` only groups images for stratified splitting.
    ``findings`` says what else was left out (hidden files, rows without images…).
    """

    images: arrays.Images
    class_index: np.ndarray
    class_names: tuple[str, ...]
    keys: tuple[str, ...]
    skipped: int = 0
    skipped_files: tuple[str, ...] = ()
    synthetic: bool = False
    origin: str = ""
    tags: np.ndarray | None = None
    findings: tuple[Finding, ...] = ()

    def __len__(self) -> int:
        return len(self.class_index)

    def take(self, indices: np.ndarray) -> ImageSet:
        """The subset at ``indices``, keeping names and provenance."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            images=self.images.take(indices),  # a view: no image is read or copied
            class_index=self.class_index[indices],
            keys=tuple(self.keys[i] for i in indices),
            tags=None if self.tags is None else self.tags[indices],
        )


# --- where the images are: class folders or labels.csv -----------------------------------


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a file tree holds a dataset. ``files`` are ``(path, key, class index)``: the path
    as listed, the key relative to the data root (one wrapping folder removed)."""

    class_names: tuple[str, ...]
    files: tuple[tuple[str, str, int], ...]
    annotation: str | None = None  # the path of labels.csv when labels come from it
    findings: tuple[Finding, ...] = ()


def plan_layout(paths: list[str], where: str) -> Layout:
    """Class folders (``image_dataset_from_directory`` layout) or a folder of images with
    labels.csv, in a list of posix paths. One folder wrapping everything (as "compress
    folder" makes) is looked through. Raises :class:`DatasetUnavailable` when neither fits."""
    prefix = ""
    tops = {path.split("/", 1)[0] for path in paths}
    if len(tops) == 1 and all("/" in path for path in paths):
        inner = [path.split("/", 1)[1] for path in paths]
        if ANNOTATION_FILE in inner or any("/" in path for path in inner):
            prefix = f"{tops.pop()}/"
    by_key = {path[len(prefix) :]: path for path in paths}
    if ANNOTATION_FILE in by_key:
        images = sorted(key for key in by_key if _is_image(key))
        others = sorted(key for key in by_key if not _is_image(key) and key != ANNOTATION_FILE)
        findings = (Finding("files that are not images were ignored", tuple(others)),) if others else ()
        return Layout((), tuple((by_key[key], key, -1) for key in images), by_key[ANNOTATION_FILE], findings)
    class_names = tuple(sorted({key.split("/", 1)[0] for key in by_key if "/" in key and _is_image(key)}))
    if not class_names:
        raise DatasetUnavailable(
            f"{where} has no class subfolders; expected one subfolder per class (e.g. cats/, dogs/), "
            f"or a folder of images with a {ANNOTATION_FILE} (file name, labels separated by ; or |)."
        )
    column = {name: index for index, name in enumerate(class_names)}
    files = tuple(
        (by_key[key], key, column[key.split("/", 1)[0]])
        for key in sorted(by_key)
        if "/" in key and _is_image(key) and key.split("/", 1)[0] in column
    )
    loose = tuple(sorted(key for key in by_key if "/" not in key and _is_image(key)))
    others = tuple(sorted(key for key in by_key if not _is_image(key)))
    findings = tuple(
        Finding(what, names)
        for what, names in (
            ("images outside any class folder were ignored", loose),
            ("files that are not images were ignored", others),
        )
        if names
    )
    return Layout(class_names, files, None, findings)


def folder_layout(root: Path) -> Layout:
    if not root.is_dir():
        raise DatasetUnavailable(f"Folder not found: {root}")
    paths = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and not archives.is_system(path.relative_to(root).as_posix())
    )
    layout = plan_layout(paths, str(root))
    if not layout.files:
        raise DatasetUnavailable(f"{root} contains no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return layout


def decode_bytes(data: bytes, image_size: int) -> np.ndarray:
    """Validate, decode (JPEG at reduced scale) and resize one image to ``(size, size, 3)`` uint8.
    Raises :class:`ImageError` for anything that is not a sane image."""
    return to_model_input(load_image(data, draft=image_size), image_size)


def decode_file(path: Path, image_size: int) -> np.ndarray | None:
    """Decode and resize one image file to ``(size, size, 3)`` uint8, or ``None`` if unreadable."""
    try:
        return decode_bytes(Path(path).read_bytes(), image_size)
    except (OSError, ImageError):
        return None


def decode_workers() -> int:
    """Threads decoding a folder or zip at once (image decoding releases the GIL)."""
    return max(1, min(8, (os.cpu_count() or 1) * 2))


def _chunks(items: Iterable) -> Iterator[list]:
    """Items in chunks of at most DECODE_CHUNK_FILES files or DECODE_CHUNK_BYTES of file bytes."""
    chunk, held = [], 0
    for item in items:
        chunk.append(item)
        held += len(item) if isinstance(item, bytes) else 0
        if len(chunk) >= DECODE_CHUNK_FILES or held >= DECODE_CHUNK_BYTES:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


class _Sink:
    """Where decoded images go: the cache file, chunk by chunk, or (without a cache) memory."""

    def __init__(self, name: str | None, image_size: int, capacity: int):
        self.shape = (image_size, image_size, 3)
        self.writer = arrays.ImageWriter(cfg.cache_dir() / f"{name}.u8", self.shape) if name else None
        # Without a cache, one array filled in place: never a list of images and a stacked copy of it.
        self.buffer = None if name else np.empty((capacity, *self.shape), np.uint8)
        self.count = 0

    def append(self, images: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.append(images)
        else:
            self.buffer[self.count : self.count + len(images)] = images
        self.count += len(images)

    def finish(self) -> arrays.Images:
        if self.writer is not None:
            return arrays.Images(self.writer.finish())
        return arrays.Images(self.buffer[: self.count])

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.abandon()


def _decode_into(items: Iterable, decode: Callable, sink: _Sink) -> list[bool]:
    """Decode ``items`` (paths, or bytes read one by one) in chunks on a thread pool, handing
    each chunk's good images to ``sink``; at most one chunk is held at a time. Returns, per
    item, whether it decoded."""
    decoded: list[bool] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        for chunk in _chunks(items):
            results = list(pool.map(decode, chunk))
            good = [array for array in results if array is not None]
            if good:
                sink.append(np.stack(good))
            decoded += [array is not None for array in results]
    return decoded


def _decode_or_none(data: bytes | Exception, image_size: int) -> np.ndarray | None:
    if isinstance(data, Exception):
        return None
    try:
        return decode_bytes(data, image_size)
    except ImageError:
        return None


def _cache_key(root: Path, files: list[tuple[Path, int]], image_size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{image_size}|{root.resolve()}".encode())
    for path, index in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{index}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _read_cache(name: str, origin: str) -> ImageSet | None:
    """The cached set called ``name``, or ``None``; a damaged entry is removed, never trusted.
    Its images stay on disk (:class:`arrays.Images`): nothing is read until it is used."""
    cache_images = cfg.cache_dir() / f"{name}.u8"
    cache_meta = cache_images.with_suffix(".json")
    if not (cache_images.exists() and cache_meta.exists()):
        return None
    try:
        meta = json.loads(cache_meta.read_text())
        images = arrays.Images(arrays.ImageFile(cache_images, meta["count"], tuple(meta["shape"])))
        class_index = np.asarray(meta["class_index"], dtype=np.int32)
        class_names = tuple(meta["class_names"])
        tags = None
        if meta.get("tags") is not None:
            tags = np.zeros((len(class_index), len(class_names)), dtype=np.uint8)
            for row, columns in enumerate(meta["tags"]):
                tags[row, columns] = 1
        if len(images) != len(class_index) or len(meta["keys"]) != len(class_index):
            raise ValueError("cache entries disagree")
        skipped_files = tuple(meta["skipped_files"])
        findings = tuple(Finding(what, tuple(names)) for what, names in meta.get("findings", []))
        return ImageSet(
            images, class_index, class_names, tuple(meta["keys"]), len(skipped_files), skipped_files,
            origin=origin, tags=tags, findings=findings,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        cache_images.unlink(missing_ok=True)
        return None


def _write_meta(name: str, image_set: ImageSet) -> None:
    """The metadata beside a cache file of images; written last, so an entry is complete or absent."""
    meta = {
        "count": len(image_set.images),
        "shape": image_set.images.shape[1:],
        "class_names": image_set.class_names,
        "keys": image_set.keys,
        "skipped_files": image_set.skipped_files,
        "class_index": image_set.class_index.tolist(),
        "tags": None if image_set.tags is None else [np.flatnonzero(row).tolist() for row in image_set.tags],
        "findings": [(finding.what, finding.names) for finding in image_set.findings],
    }
    store.write_atomic(cfg.cache_dir() / f"{name}.json", json.dumps(meta).encode())


def _annotated(layout: Layout, annotation: bytes | None) -> tuple[Layout, Annotations | None]:
    """For labels.csv data: the layout cut to the images the CSV labels (the others are never
    decoded), with what the CSV left out among its findings."""
    if layout.annotation is None:
        return layout, None
    try:
        notes = read_annotations(annotation or b"", [key for _, key, _ in layout.files])
    except AnnotationError as error:
        raise DatasetUnavailable(str(error)) from error
    listed = set(notes.files)
    findings = layout.findings + tuple(
        Finding(what, names)
        for what, names in (
            (f"rows of {ANNOTATION_FILE} name a file that is not there", notes.missing_files),
            (f"images have no row in {ANNOTATION_FILE} and were left out", notes.unlisted_files),
            (f"rows of {ANNOTATION_FILE} could not be read (lines)", tuple(map(str, notes.bad_rows))),
        )
        if names
    )
    if notes.duplicate_rows:
        findings += (Finding(f"images have more than one row in {ANNOTATION_FILE}; their labels were merged",
                             (f"{notes.duplicate_rows} rows",)),)  # fmt: skip
    files = tuple(entry for entry in layout.files if entry[1] in listed)
    return dataclasses.replace(layout, files=files, findings=findings), notes


def _assemble(layout: Layout, decoded: list[bool], images: arrays.Images, origin: str, notes) -> ImageSet:
    """An :class:`ImageSet` from a layout, which of its files decoded, their images and labels.csv."""
    good = [i for i, ok in enumerate(decoded) if ok]
    skipped_files = tuple(layout.files[i][1] for i, ok in enumerate(decoded) if not ok)
    keys = tuple(layout.files[i][1] for i in good)
    if notes is None:
        class_index = np.array([layout.files[i][2] for i in good], dtype=np.int32)
        return ImageSet(images, class_index, layout.class_names, keys, len(skipped_files), skipped_files,
                        origin=origin, findings=layout.findings)  # fmt: skip
    row_of = {name: row for row, name in enumerate(notes.files)}
    tags = notes.tags[[row_of[key] for key in keys]] if keys else notes.tags[:0]
    return ImageSet(
        images, stratification_groups(tags), notes.label_names, keys, len(skipped_files), skipped_files,
        origin=origin, tags=tags, findings=layout.findings,
    )  # fmt: skip


def _decode_and_cache(layout: Layout, items: Iterable, decode: Callable, image_size: int, origin: str,
                      notes, name: str | None) -> ImageSet:  # fmt: skip
    """Decode a layout's files into the cache entry ``name`` (or memory), then its metadata."""
    sink = _Sink(name, image_size, len(layout.files))
    try:
        decoded = _decode_into(items, decode, sink)
        images = sink.finish()
    except BaseException:
        sink.abandon()
        raise
    image_set = _assemble(layout, decoded, images, origin, notes)
    if name is not None:
        _write_meta(name, image_set)
    return image_set


def load_folder(root: Path | str, image_size: int = 128, *, use_cache: bool = True) -> ImageSet:
    """Load a folder of class subfolders, or of images with labels.csv, with a disk cache.
    Decoded images are written to the cache as they come, so memory stays flat."""
    root = Path(root).expanduser()
    layout = folder_layout(root)
    listed = [(root / path, index) for path, _, index in layout.files]
    if layout.annotation is not None:
        listed.append((root / layout.annotation, -1))  # an edited CSV is a new cache entry
    key = _cache_key(root, listed, image_size)
    if use_cache and (cached := _read_cache(key, str(root))) is not None:
        return cached
    annotation = (root / layout.annotation).read_bytes() if layout.annotation is not None else None
    layout, notes = _annotated(layout, annotation)
    paths = [root / path for path, _, _ in layout.files]
    return _decode_and_cache(
        layout, paths, lambda path: decode_file(path, image_size), image_size, str(root), notes,
        key if use_cache else None,
    )  # fmt: skip


# --- an uploaded zip -------------------------------------------------------------------------


def archive_digest(path: Path | str) -> str:
    """The SHA-256 of a file's content (the decoded cache of a zip is keyed on it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(2**20):
            digest.update(block)
    return digest.hexdigest()


def archive_cache_name(digest: str, image_size: int) -> str:
    return f"zip-{digest[:32]}-{image_size}-v{CACHE_VERSION}"


def forget_archive(digest: str) -> None:
    """Delete every decoded cache entry of the zip with this content hash (16 hex digits of it
    are enough to name them)."""
    if len(digest) < 16 or not all(char in "0123456789abcdef" for char in digest):
        return
    for entry in cfg.cache_dir().glob(f"zip-{digest[:16]}*"):
        entry.unlink(missing_ok=True)


def has_annotations(config: cfg.DataConfig) -> bool:
    """Whether a folder or zip source takes its labels from labels.csv (reads file lists only)."""
    try:
        if config.source == "folder":
            return folder_layout(Path(config.folder).expanduser()).annotation is not None
        if config.source == "zip":
            limits = archives.ZipLimits()
            with archives.open_zip(config.archive, limits) as archive:
                paths = [member.path for member in archives.list_members(archive, limits).members]
            return plan_layout(paths, config.archive).annotation is not None
    except (DatasetUnavailable, archives.ArchiveError, zipfile.BadZipFile, OSError):
        return False
    return False


def load_archive(
    path: Path | str,
    image_size: int = 128,
    *,
    limits: archives.ZipLimits | None = None,
    use_cache: bool = True,
    origin: str | None = None,
) -> ImageSet:
    """Load a zip of class folders, or of images with labels.csv, reading members one by one
    within ``limits``; decoded images are cached under the zip's content hash. Raises
    :class:`DatasetUnavailable` with the limit or defect that made the zip unusable."""
    limits = limits or archives.ZipLimits()
    origin = origin or str(path)
    try:
        with archives.open_zip(path, limits) as archive:
            listing = archives.list_members(archive, limits)
            name = archive_cache_name(archive_digest(path), image_size)
            if use_cache and (cached := _read_cache(name, origin)) is not None:
                return cached
            member_of = {member.path: member for member in listing.members}
            if not member_of:
                raise DatasetUnavailable(f"The zip {origin} holds no usable files.")
            layout = plan_layout(list(member_of), f"The zip {origin}")
            if not layout.files:
                raise DatasetUnavailable(f"The zip {origin} contains no image files ({', '.join(IMAGE_EXTENSIONS)}).")
            skipped = tuple(
                Finding(f"files were skipped: {reason}", tuple(names)) for reason, names in listing.skipped.items()
            )
            layout = dataclasses.replace(layout, findings=skipped + layout.findings)
            decoded_bytes = len(layout.files) * image_size * image_size * 3
            if decoded_bytes > MAX_DECODED_BYTES:
                raise DatasetUnavailable(
                    f"The zip has {len(layout.files):,} images: at {image_size} px they take "
                    f"{decoded_bytes / 2**20:,.0f} MB decoded, and the limit is {MAX_DECODED_BYTES // 2**20:,} MB. "
                    "Choose a smaller image size, or send fewer images."
                )
            reader = archives.Reader(archive, limits)
            annotation = reader.read(member_of[layout.annotation]) if layout.annotation is not None else None
            layout, notes = _annotated(layout, annotation)
            wanted = [member_of[path] for path, _, _ in layout.files]
            return _decode_and_cache(
                layout, (data for _, data in reader.read_all(wanted)), lambda data: _decode_or_none(data, image_size),
                image_size, origin, notes, name if use_cache else None,
            )  # fmt: skip
    except archives.ArchiveError as error:
        raise DatasetUnavailable(str(error)) from error
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DatasetUnavailable(f"The zip {origin} is damaged ({error}).") from error


def stratified_subset(image_set: ImageSet, n_images: int | None, seed: int) -> ImageSet:
    """At most ``n_images`` images, drawn with ``seed`` in proportion to each class."""
    if n_images is None or n_images >= len(image_set):
        return image_set
    indices = stratified_split_indices(image_set.class_index, n_images / len(image_set), seed)[1]
    return image_set.take(np.sort(indices))


def stratified_split_indices(class_index: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into ``(rest, part)`` where ``part`` holds ``fraction`` of each class.

    Each class gets the whole part of its share, and the images still owed to ``part``
    overall go to the classes with the largest remainders: many small classes (the groups
    of multi-label data) then still give ``part`` its full ``fraction``, where rounding each
    class on its own could leave it nearly empty.
    """
    rng = np.random.default_rng(seed)
    values = np.unique(class_index)
    members = [rng.permutation(np.flatnonzero(class_index == value)) for value in values]
    shares = np.array([len(group) * fraction for group in members])
    counts = np.floor(shares).astype(int)
    owed = int(round(len(class_index) * fraction)) - int(counts.sum())
    if owed > 0:
        order = np.lexsort((rng.random(len(values)), -(shares - counts)))  # largest remainder, ties at random
        counts[order[:owed]] += 1
    part = [group[:count] for group, count in zip(members, counts, strict=True)]
    rest = [group[count:] for group, count in zip(members, counts, strict=True)]
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


DEMO_ORIGIN = "synthetic demo set"


def make_demo_set(n_images: int, image_size: int = 128, seed: int = 0, *, use_cache: bool = True) -> ImageSet:
    """A deterministic, clearly synthetic cats-and-dogs set that a CNN can learn. Drawn in
    chunks straight into the disk cache, so any size takes the same memory."""
    if n_images < 2:
        raise ValueError(f"n_images must be at least 2, got {n_images}")
    name = f"demo-{seed}-{n_images}-{image_size}-v{CACHE_VERSION}"
    if use_cache and (cached := _read_cache(name, DEMO_ORIGIN)) is not None:
        return dataclasses.replace(cached, synthetic=True)
    class_index = np.arange(n_images, dtype=np.int32) % 2
    keys = tuple(f"demo-{seed}/{DEMO_CLASSES[c]}/{i:05d}" for i, c in enumerate(class_index))
    sink = _Sink(name if use_cache else None, image_size, n_images)
    try:
        for start in range(0, n_images, DECODE_CHUNK_FILES):
            stop = min(n_images, start + DECODE_CHUNK_FILES)
            sink.append(np.stack([_demo_image(seed, i, image_size)[0] for i in range(start, stop)]))
        images = sink.finish()
    except BaseException:
        sink.abandon()
        raise
    image_set = ImageSet(images, class_index, DEMO_CLASSES, keys, synthetic=True, origin=DEMO_ORIGIN)
    if use_cache:
        _write_meta(name, image_set)
    return image_set


# --- splits with multi-label targets ---------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """Images (a view: read a batch at a time), their multi-label targets and stable keys."""

    images: arrays.Images
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
    findings: tuple[Finding, ...] = ()
    annotated: bool = False  # labels come from a labels.csv, not from class folders

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def _prefixed(image_set: ImageSet, prefix: str) -> ImageSet:
    return dataclasses.replace(
        image_set,
        keys=tuple(f"{prefix}/{key}" for key in image_set.keys),
        skipped_files=tuple(f"{prefix}/{name}" for name in image_set.skipped_files),
    )


def _to_split(image_set: ImageSet, config: cfg.DataConfig) -> Split:
    if image_set.tags is not None:
        targets = tag_targets(
            image_set.tags,
            image_set.keys,
            add_indoor=config.add_indoor,
            indoor_probability=config.indoor_probability,
            seed=config.seed,
        )
    else:
        targets = make_targets(
            image_set.class_index,
            image_set.class_names,
            image_set.keys,
            indoor_probability=config.indoor_probability,
            seed=config.seed,
        )
    return Split(image_set.images, targets, image_set.keys)


def _split_label_names(image_set: ImageSet, config: cfg.DataConfig) -> tuple[str, ...]:
    if image_set.tags is None:
        return label_names(image_set.class_names)
    return image_set.class_names + ((RANDOM_LABEL,) if config.add_indoor else ())


def _check_classes(image_set: ImageSet) -> None:
    """Refuse class-folder data the pages could not split, train or show."""
    names, counts = image_set.class_names, np.bincount(image_set.class_index, minlength=len(image_set.class_names))
    meanings: dict[str, list[str]] = {}
    for name in names:  # names that read the same (case, spaces, Unicode forms) would be one label twice
        same = unicodedata.normalize("NFKC", CLASS_ALIASES.get(name.lower(), name)).strip().casefold()
        meanings.setdefault(same, []).append(name)
    if RANDOM_LABEL in meanings:
        raise DatasetUnavailable(
            f"A class folder may not be called {meanings[RANDOM_LABEL][0]!r}: that label is the random tag. "
            "Rename the folder."
        )
    mapped = [unicodedata.normalize("NFC", CLASS_ALIASES.get(name.lower(), name)) for name in names]
    if problems := label_name_problems(mapped):
        raise DatasetUnavailable(f"Class folder names that cannot be labels: {'; '.join(problems[:5])}. Rename them.")
    clashes = [" and ".join(same) for same in meanings.values() if len(same) > 1]
    if clashes:
        raise DatasetUnavailable(
            f"These class folders would give one label twice: {'; '.join(clashes)}. Merge or rename them."
        )
    if len(names) < 2:
        raise DatasetUnavailable(
            f"{image_set.origin} has one class folder only ({', '.join(names)}); a classifier needs at least two "
            f"(one subfolder per class), or a {ANNOTATION_FILE} with the labels."
        )
    if len(names) > MAX_CLASSES:
        raise DatasetUnavailable(
            f"{image_set.origin} has {len(names)} class folders; the app shows at most {MAX_CLASSES} classes "
            "(plus the random indoor tag)."
        )
    few = [f"{name} ({count})" for name, count in zip(names, counts, strict=True) if count < MIN_CLASS_IMAGES]
    if few:
        raise DatasetUnavailable(
            f"Each class needs at least {MIN_CLASS_IMAGES} readable images, so that the training, validation "
            f"and test splits all get some; too few in: {', '.join(few)}."
        )


def _label_options(image_set: ImageSet, config: cfg.DataConfig) -> ImageSet:
    """labels.csv data after the config's label options: rare labels reported, and dropped if asked."""
    rare = rare_labels(image_set.tags, image_set.class_names)
    found = tuple(f"{name} ({count})" for name, count in rare.items())
    if rare and config.drop_rare_labels:
        keep = np.array([name not in rare for name in image_set.class_names])
        tags = image_set.tags[:, keep]
        image_set = dataclasses.replace(
            image_set,
            tags=tags,
            class_names=tuple(np.array(image_set.class_names, dtype=object)[keep]),
            class_index=stratification_groups(tags),
        )
    if found:
        what = "dropped" if config.drop_rare_labels else "kept: their validation and test figures rest on a few images"
        finding = Finding(f"labels are seen on fewer than {MIN_LABEL_IMAGES} images and were {what}", found)
        image_set = dataclasses.replace(image_set, findings=image_set.findings + (finding,))
    names = image_set.class_names
    if not names:
        raise DatasetUnavailable(
            f"No label in {ANNOTATION_FILE} is seen on {MIN_LABEL_IMAGES} images or more; add images, "
            "or keep the rare labels."
        )
    if config.add_indoor and RANDOM_LABEL in names:
        raise DatasetUnavailable(
            f"{ANNOTATION_FILE} has a label called {RANDOM_LABEL!r}, so the random tag of that name cannot be added."
        )
    if len(names) + config.add_indoor > MAX_LABELS:
        raise DatasetUnavailable(
            f"{ANNOTATION_FILE} has {len(names)} labels (after the options above); the app shows at most {MAX_LABELS}."
        )
    return image_set


def _source_sets(config: cfg.DataConfig) -> tuple[ImageSet, ImageSet]:
    """The training pool and the held-out test set for a config's source."""
    if config.source == "real":
        root = resolve_real_dataset(config.data_dir)
        pool = _prefixed(load_folder(root / "train", config.image_size), "train")
        test = _prefixed(load_folder(root / "validation", config.image_size), "validation")
        return pool, test
    if config.source == "folder":
        everything = load_folder(config.folder, config.image_size)
    elif config.source == "zip":
        if not Path(config.archive).is_file():
            raise DatasetUnavailable(f"Zip not found: {config.archive}")
        everything = load_archive(config.archive, config.image_size, origin=Path(config.archive).name)
    else:
        everything = make_demo_set(config.demo_images, config.image_size, config.seed)
    if len(everything) < 4:
        raise DatasetUnavailable(f"{everything.origin} has only {len(everything)} readable images; need at least 4.")
    if everything.tags is not None:
        everything = _label_options(everything, config)
    elif not everything.synthetic:
        _check_classes(everything)
    rest, test = stratified_split_indices(everything.class_index, config.test_fraction, config.seed)
    return everything.take(rest), everything.take(test)


def _absent_labels(parts: dict[str, Split], names: tuple[str, ...]) -> tuple[Finding, ...]:
    """Labels with no positive image in a split: nothing there to choose or judge a threshold on."""
    findings = []
    for split, part in parts.items():
        counts = part.targets[:, : len(names)].sum(axis=0)  # the random tag, last, is not looked at
        absent = tuple(name for name, count in zip(names, counts, strict=True) if count == 0)
        if absent and len(part):
            findings.append(Finding(f"labels have no image in the {split} split", absent))
    return tuple(findings)


def load_splits(config: cfg.DataConfig) -> Splits:
    """Load a config's source, subset the pool, split off validation, and label everything."""
    pool, test = _source_sets(config)
    pool = stratified_subset(pool, config.n_images, config.seed)
    train_idx, val_idx = stratified_split_indices(pool.class_index, config.validation_fraction, config.seed + 1)
    parts = {
        "training": _to_split(pool.take(train_idx), config),
        "validation": _to_split(pool.take(val_idx), config),
        "test": _to_split(test, config),
    }
    names = _split_label_names(pool, config)
    absent = _absent_labels(parts, names[: len(pool.class_names)]) if pool.tags is not None else ()
    return Splits(
        train=parts["training"],
        validation=parts["validation"],
        test=parts["test"],
        label_names=names,
        class_names=pool.class_names,
        synthetic=pool.synthetic,
        origin=pool.origin if config.source != "real" else str(Path(pool.origin).parent),
        # Pool and test may come from one folder and so carry the same skipped list.
        skipped_files=tuple(dict.fromkeys(pool.skipped_files + test.skipped_files)),
        findings=tuple(dict.fromkeys(pool.findings + test.findings)) + absent,
        annotated=pool.tags is not None,
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
        return Split(labelled.images.take(indices), labelled.targets[indices], tuple(labelled.keys[i] for i in indices))

    return Splits(
        train=part(train_idx[:split_at]),
        validation=part(train_idx[split_at:]),
        test=part(test_idx),
        label_names=_split_label_names(pool, config),
        class_names=pool.class_names,
        synthetic=pool.synthetic,
        origin=pool.origin,
        skipped_files=pool.skipped_files,
    )
