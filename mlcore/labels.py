"""Multi-label targets: dog/cat from the image's class plus a random ``indoor`` tag.

``indoor`` is deliberately random (the notebook's simulated environment tag): a
model that predicts it better than chance has found a leak, not a pattern.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import re
import unicodedata

import numpy as np

from mlcore.config import LABELS, RANDOM_LABEL

# Folder names that mean one of our labels.
CLASS_ALIASES = {"dogs": "dog", "dog": "dog", "cats": "cat", "cat": "cat"}


def label_names(class_names: tuple[str, ...]) -> tuple[str, ...]:
    """Label columns for a dataset's classes: ``LABELS`` for cats/dogs, else the classes + indoor."""
    mapped = tuple(CLASS_ALIASES.get(name.lower(), name) for name in class_names)
    if set(mapped) == {"dog", "cat"}:
        return LABELS
    if RANDOM_LABEL in mapped:
        raise ValueError(f"a class folder may not be called {RANDOM_LABEL!r}: that label is simulated")
    return mapped + (RANDOM_LABEL,)


def uniform_per_key(keys: tuple[str, ...] | list[str], seed: int) -> np.ndarray:
    """One uniform number in [0, 1) per key, fixed by ``(seed, key)`` alone, not by order."""
    values = [
        int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little") for key in keys
    ]
    return np.array(values, dtype=np.float64) / 2.0**64


def make_targets(
    class_index: np.ndarray,
    class_names: tuple[str, ...],
    keys: tuple[str, ...] | list[str],
    *,
    indoor_probability: float,
    seed: int,
) -> np.ndarray:
    """Float32 targets of shape ``(n, len(label_names(class_names)))``.

    Class columns are one-hot; the last column is ``indoor ~ Bernoulli(p)``.
    Raising ``p`` only adds ``indoor`` tags, it never moves existing ones.
    """
    if not 0.0 <= indoor_probability <= 1.0:
        raise ValueError(f"indoor_probability must be between 0 and 1, got {indoor_probability}")
    class_index = np.asarray(class_index)
    if len(class_index) != len(keys):
        raise ValueError(f"{len(class_index)} class indices but {len(keys)} keys")
    names = label_names(class_names)
    mapped = [CLASS_ALIASES.get(name.lower(), name) for name in class_names]
    column_of_class = np.array([names.index(name) for name in mapped])
    targets = np.zeros((len(class_index), len(names)), dtype=np.float32)
    targets[np.arange(len(class_index)), column_of_class[class_index]] = 1.0
    targets[:, -1] = uniform_per_key(keys, seed) < indoor_probability
    return targets


# --- real multi-label annotations: labels.csv ------------------------------------------

ANNOTATION_FILE = "labels.csv"
LABEL_SEPARATORS = re.compile(r"[;|]")
MAX_LABELS = 20  # label columns the pages can show (threshold sliders, one heatmap each)
MIN_LABEL_IMAGES = 10  # fewer, and the validation and test splits get almost none
MAX_LABEL_LENGTH = 64
MAX_ANNOTATION_BYTES = 10 * 2**20
MAX_ANNOTATION_ROWS = 50_000
MAX_DISTINCT_LABELS = 1_000  # before rare labels are dropped; the tag matrix is images x labels


class AnnotationError(ValueError):
    """A labels.csv that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class Annotations:
    """What labels.csv says about the images that exist.

    ``tags`` is multi-hot over ``label_names`` (sorted), one row per entry of ``files``.
    """

    files: tuple[str, ...]
    label_names: tuple[str, ...]
    tags: np.ndarray
    missing_files: tuple[str, ...]  # rows naming a file that is not there
    unlisted_files: tuple[str, ...]  # images that have no row
    bad_rows: tuple[int, ...]  # line numbers of rows that could not be read
    duplicate_rows: int


def _clean_name(text: str) -> str:
    parts = text.strip().replace("\\", "/").split("/")
    return unicodedata.normalize("NFC", "/".join(part for part in parts if part not in ("", ".")))


# Label names become table columns, report rows, chart titles and Markdown text: letters,
# digits and a few harmless marks only, and none of the names those places use themselves.
LABEL_NAME = re.compile(r"[^\W_][\w .'()+&/-]*")
RESERVED_LABELS = frozenset(
    {RANDOM_LABEL, "micro avg", "macro avg", "weighted avg", "samples avg", "file", "predicted", "error",
     "refused", "none of the labels"}
)  # fmt: skip
FILE_HEADERS = ("file", "filename", "file_name", "image", "image_name", "path", "name")
LABEL_HEADERS = ("labels", "label", "tags", "classes")


def label_name_problems(names) -> list[str]:
    """Why each unusable label name cannot be used (empty when all are fine)."""
    problems = []
    for name in names:
        if name.lower() in RESERVED_LABELS:
            problems.append(f"{name!r} is a name the app uses itself")
        elif len(name) > MAX_LABEL_LENGTH or not LABEL_NAME.fullmatch(name):
            problems.append(
                f"{name[:MAX_LABEL_LENGTH]!r} is not a plain name (letters, digits, spaces and . ' ( ) + & / - _, "
                f"at most {MAX_LABEL_LENGTH} characters)"
            )
    return problems


def _columns(header: list[str]) -> tuple[int, int]:
    """Where the file name and the labels are: by header name, else the first two columns;
    a leading unnamed column (pandas' index) is skipped."""
    names = [cell.strip().lower() for cell in header]
    offset = 1 if len(names) >= 3 and names[0] in ("", "unnamed: 0") else 0
    rest = names[offset:]
    file_column = next((i for i, name in enumerate(rest) if name in FILE_HEADERS), 0)
    label_column = next((i for i, name in enumerate(rest) if name in LABEL_HEADERS), 1 if file_column == 0 else 0)
    return file_column + offset, label_column + offset


def _delimiter(text: str) -> str:
    """``,`` unless the header row is plainly separated by tabs or semicolons (Excel in many locales)."""
    header = text.split("\n", 1)[0]
    if "," in header:
        return ","
    return "\t" if "\t" in header else (";" if ";" in header else ",")


def read_annotations(data: bytes, images: list[str]) -> Annotations:
    """Parse labels.csv (a header row, then ``file name, label;label|label``) against the images present.

    Columns are found by their header (``file``/``image``…, ``labels``/``tags``…), else they
    are the first two. Images with an empty label field are all-negative; rows for absent
    files and images without a row are counted, never fatal.
    """
    if len(data) > MAX_ANNOTATION_BYTES:
        raise AnnotationError(f"{ANNOTATION_FILE} is {len(data):,} bytes; the limit is {MAX_ANNOTATION_BYTES:,}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{ANNOTATION_FILE} is not UTF-8 text ({error.reason} at byte {error.start}).") from error
    delimiter = _delimiter(text)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = list(itertools.islice(reader, MAX_ANNOTATION_ROWS + 2))
    except csv.Error as error:
        raise AnnotationError(f"{ANNOTATION_FILE} is not a readable CSV file ({error}).") from error
    if len(rows) < 2:
        raise AnnotationError(f"{ANNOTATION_FILE} has no rows after its header; expected 'file,labels' rows.")
    if len(rows) > MAX_ANNOTATION_ROWS + 1:
        raise AnnotationError(f"{ANNOTATION_FILE} has more than {MAX_ANNOTATION_ROWS:,} rows; that is the limit.")
    file_column, label_column = _columns(rows[0])
    width = len(rows[0])
    present = {unicodedata.normalize("NFC", image): image for image in images}  # a folder's names may be NFD
    labelled: dict[str, set[str]] = {}
    missing, bad_rows, duplicates, distinct = [], [], 0, set()
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if delimiter == ";" and len(row) > width:  # labels separated by the delimiter itself
            row = [*row[:label_column], ";".join(row[label_column:])]
        name = _clean_name(row[file_column]) if len(row) > file_column else ""
        if len(row) > width or not name:
            bad_rows.append(line)
            continue
        field = row[label_column] if len(row) > label_column else ""
        tags = {unicodedata.normalize("NFC", tag.strip()) for tag in LABEL_SEPARATORS.split(field) if tag.strip()}
        distinct |= tags
        if len(distinct) > MAX_DISTINCT_LABELS:
            raise AnnotationError(
                f"{ANNOTATION_FILE} names more than {MAX_DISTINCT_LABELS:,} different labels; the app shows at "
                f"most {MAX_LABELS}. Keep the labels you want to learn."
            )
        if name not in present:
            missing.append(name)
            continue
        name = present[name]
        if name in labelled:
            duplicates += 1
            labelled[name] |= tags
        else:
            labelled[name] = tags
    if problems := label_name_problems(sorted(distinct)):
        shown = "; ".join(problems[:5]) + ("…" if len(problems) > 5 else "")
        raise AnnotationError(f"{ANNOTATION_FILE} has labels that cannot be used: {shown}. Rename them.")
    files = tuple(name for name in images if name in labelled)
    if not files:
        raise AnnotationError(
            f"No row of {ANNOTATION_FILE} names an image that is there: {len(missing):,} rows name missing files "
            f"and {len(bad_rows):,} could not be read (more columns than the header has, or no file name). The "
            "file column must hold each image's name, relative to the folder holding the CSV."
        )
    names = tuple(sorted(set().union(*labelled.values())))
    tags = np.zeros((len(files), len(names)), dtype=np.uint8)
    column = {name: index for index, name in enumerate(names)}
    for row, name in enumerate(files):
        tags[row, [column[tag] for tag in labelled[name]]] = 1
    return Annotations(
        files=files,
        label_names=names,
        tags=tags,
        missing_files=tuple(missing),
        unlisted_files=tuple(name for name in images if name not in labelled),
        bad_rows=tuple(bad_rows),
        duplicate_rows=duplicates,
    )


def rare_labels(tags: np.ndarray, names: tuple[str, ...], minimum: int = MIN_LABEL_IMAGES) -> dict[str, int]:
    """Labels seen on fewer than ``minimum`` images, with their counts."""
    counts = np.asarray(tags).sum(axis=0)
    return {name: int(count) for name, count in zip(names, counts, strict=True) if count < minimum}


def stratification_groups(tags: np.ndarray) -> np.ndarray:
    """One group per image for stratified splitting of multi-label data: the image's
    rarest label, or a group of its own for images with none. Rare labels so reach
    every split in proportion."""
    tags = np.asarray(tags, dtype=bool)
    if not tags.shape[1]:
        return np.zeros(len(tags), np.int32)
    order = np.argsort(tags.sum(axis=0), kind="stable")  # rarest label first
    groups = order[np.argmax(tags[:, order], axis=1)]  # the first label present in that order
    groups[~tags.any(axis=1)] = tags.shape[1]
    return groups.astype(np.int32)


def tag_targets(
    tags: np.ndarray, keys: tuple[str, ...] | list[str], *, add_indoor: bool, indoor_probability: float, seed: int
) -> np.ndarray:
    """Float32 targets for labels.csv data: its multi-hot tags, then the random ``indoor``
    column when ``add_indoor`` (drawn per key exactly as :func:`make_targets` draws it)."""
    targets = np.asarray(tags, dtype=np.float32)
    if len(targets) != len(keys):
        raise ValueError(f"{len(targets)} tag rows but {len(keys)} keys")
    if not add_indoor:
        return targets.copy()
    indoor = (uniform_per_key(keys, seed) < indoor_probability).astype(np.float32)
    return np.concatenate([targets, indoor[:, None]], axis=1)
