"""Reading a zip that anyone may have made, one member at a time, within hard limits.

Nothing is extracted to disk and no declared size is trusted: the central
directory is sized before it is parsed, every member is inflated through a
capped reader, and the bytes actually produced are counted against the per-file
and total limits. A member that breaks a limit meant for one file (too big,
unsafe path, symlink, nested archive, encrypted) is skipped with its reason; a
zip that breaks a limit meant for the whole archive (size, file count, total
inflated size, a member that inflates like a zip bomb) is refused with an
:class:`ArchiveError` that says which limit and by how much.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import stat
import struct
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MB = 2**20
CHUNK = MB
SUPPORTED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# Folders and files that operating systems add to archives; never data.
SYSTEM_NAMES = {"__macosx", ".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"}
NESTED_ARCHIVES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".jar")
CENTRAL_DIRECTORY_BYTES_PER_FILE = 200  # far above a real entry (46 bytes, its name and a few extras)


class ArchiveError(ValueError):
    """The zip cannot be used at all; the message says which limit or defect, in numbers."""


@dataclasses.dataclass(frozen=True)
class ZipLimits:
    """What one uploaded zip may cost. The defaults fit a shared server of a few GB."""

    max_archive_bytes: int = 100 * MB
    max_total_bytes: int = 1024 * MB
    max_files: int = 20_000
    max_file_bytes: int = 25 * MB
    # Photos do not compress: deflate shrinks a JPEG or PNG by a few percent. A member that
    # inflates more than this many times (and to more than ratio_floor_bytes) is a bomb.
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 4 * MB


@dataclasses.dataclass
class Member:
    """One usable entry: its path inside the zip (posix, safe) and its zip record."""

    path: str
    info: zipfile.ZipInfo


@dataclasses.dataclass
class Listing:
    """The usable members of a zip, and what was left out and why (reason -> names)."""

    members: list[Member]
    skipped: dict[str, list[str]]

    def skip(self, reason: str, name: str) -> None:
        self.skipped.setdefault(reason, []).append(name)


SKIP_UNSAFE = "unsafe path (absolute, a drive letter or '..')"
SKIP_SYMLINK = "symbolic link"
SKIP_SYSTEM = "hidden or system file (__MACOSX, .DS_Store, Thumbs.db, dot-files)"
SKIP_NESTED = "archive inside the zip (not opened)"
SKIP_ENCRYPTED = "encrypted"
SKIP_METHOD = "compression method other than stored or deflated"
SKIP_TOO_BIG = "larger than the per-file limit"
SKIP_DUPLICATE = "listed twice"


def _mb(value: float) -> str:
    return f"{value / MB:,.1f} MB" if value >= MB else f"{value:,.0f} bytes"


def _safe_path(name: str) -> str | None:
    """The member's path in posix form, or ``None`` if it could land outside the folder."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or "\x00" in text:
        return None
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    # NFC: macOS writes names decomposed (e + combining accent); a typed labels.csv is composed.
    return unicodedata.normalize("NFC", str(PurePosixPath(*parts)))


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def is_system(path: str) -> bool:
    return any(part.startswith(".") or part.lower() in SYSTEM_NAMES for part in path.split("/"))


END_RECORD = struct.Struct("<4s4H2LH")  # end of central directory: the last 22 bytes before a comment
ZIP64_LOCATOR = struct.Struct("<4sLQL")
ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")


def directory_size(stream: BinaryIO) -> tuple[int, int]:
    """``(entries, bytes)`` of the central directory as the zip's end record announces them."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    tail_start = max(0, size - END_RECORD.size - 65535)  # the record, then a comment of at most 64 KB
    stream.seek(tail_start)
    tail = stream.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < END_RECORD.size:
        raise ArchiveError("This is not a zip file, or it is damaged (no end-of-archive record).")
    _, _, _, _, entries, directory_bytes, _, _ = END_RECORD.unpack_from(tail, at)
    # As zipfile does: a zip64 locator just before the end record wins, whatever the record says,
    # and the zip64 record sits just before the locator.
    locator_at = tail_start + at - ZIP64_LOCATOR.size
    record_at = locator_at - ZIP64_END_RECORD.size
    if record_at >= 0:
        stream.seek(locator_at)
        if ZIP64_LOCATOR.unpack(stream.read(ZIP64_LOCATOR.size))[0] == b"PK\x06\x07":
            stream.seek(record_at)
            record = ZIP64_END_RECORD.unpack(stream.read(ZIP64_END_RECORD.size))
            if record[0] != b"PK\x06\x06":
                raise ArchiveError("This zip is damaged (its zip64 end record is missing).")
            entries, directory_bytes = record[7], record[8]
    return entries, directory_bytes


def check_directory(stream: BinaryIO, limits: ZipLimits) -> None:
    """Refuse a zip whose end record announces more files, or a bigger directory, than
    the limits allow, before :mod:`zipfile` builds one object per entry."""
    entries, directory_bytes = directory_size(stream)
    if entries > limits.max_files:
        raise ArchiveError(f"The zip lists {entries:,} files; the limit is {limits.max_files:,}.")
    if directory_bytes > limits.max_files * CENTRAL_DIRECTORY_BYTES_PER_FILE:
        raise ArchiveError(
            f"The zip's table of contents is {_mb(directory_bytes)}, too large for "
            f"{limits.max_files:,} files: it was refused unread."
        )


def check_size(size: int, limits: ZipLimits) -> None:
    """Refuse a zip larger than ``limits`` allow, before anything of it is read."""
    if size > limits.max_archive_bytes:
        raise ArchiveError(f"The zip is {_mb(size)}; the limit is {_mb(limits.max_archive_bytes)}.")


@contextlib.contextmanager
def open_zip(source: str | Path | BinaryIO, limits: ZipLimits) -> Iterator[zipfile.ZipFile]:
    """A :class:`zipfile.ZipFile` over ``source`` once its size and directory pass the limits;
    a path is opened here and closed on leaving (zipfile never closes a stream it was given)."""
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(open(source, "rb")) if isinstance(source, (str, Path)) else source
        stream.seek(0, io.SEEK_END)
        check_size(stream.tell(), limits)
        check_directory(stream, limits)
        try:
            archive = stack.enter_context(zipfile.ZipFile(stream))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as error:
            raise ArchiveError(f"This is not a zip file, or it is damaged ({error}).") from error
        yield archive


def list_members(archive: zipfile.ZipFile, limits: ZipLimits) -> Listing:
    """Every member that may be read, in the zip's order, and every one that may not, by reason."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:  # the end record may undercount: zipfile reads the directory by size
        raise ArchiveError(
            f"The zip holds {len(infos):,} files (more than its end record says); the limit is {limits.max_files:,}."
        )
    listing = Listing([], {})
    seen: set[str] = set()
    for info in infos:
        path = _safe_path(info.filename)
        if info.filename.endswith("/"):
            continue  # a folder entry
        if path is None:
            listing.skip(SKIP_UNSAFE, info.filename[:200] or "(no name)")
        elif _is_symlink(info):
            listing.skip(SKIP_SYMLINK, path)
        elif is_system(path):
            listing.skip(SKIP_SYSTEM, path)
        elif path.lower().endswith(NESTED_ARCHIVES):
            listing.skip(SKIP_NESTED, path)
        elif info.flag_bits & 0x41:  # traditional or strong encryption
            listing.skip(SKIP_ENCRYPTED, path)
        elif info.compress_type not in SUPPORTED_METHODS:
            listing.skip(SKIP_METHOD, path)
        elif info.file_size > limits.max_file_bytes:
            listing.skip(SKIP_TOO_BIG, path)
        elif path in seen:
            listing.skip(SKIP_DUPLICATE, path)
        else:
            _check_ratio(path, info.file_size, info.compress_size, limits)
            seen.add(path)
            listing.members.append(Member(path, info))
    _check_extents(listing.members, archive.start_dir, archive.fp)
    _check_total(sum(member.info.file_size for member in listing.members), archive, limits)
    return listing


LOCAL_HEADER_BYTES = 30
LOCAL_NAME_LENGTH_AT = 26  # the local header's name and extra-field lengths, two 16-bit numbers


def _check_extents(members: list[Member], directory_start: int, stream: BinaryIO) -> None:
    """Refuse members whose compressed data overlap, or run past the next member or into the
    directory: overlapping entries inflate the same bytes many times (a zip bomb), and a
    compressed size larger than the room it has lies about the member's ratio."""
    if not members:
        return
    ordered = sorted(members, key=lambda member: member.info.header_offset)
    if ordered[0].info.header_offset < 0:  # the end record moved the directory: zipfile shifted every entry
        raise ArchiveError("The zip's table of contents points outside the file: the zip is damaged.")
    ends = [member.info.header_offset for member in ordered[1:]] + [directory_start]
    for member, end in zip(ordered, ends, strict=True):
        # The data starts after the local header's own name and extra field, whose lengths
        # may differ from the directory's: an extra field can swallow the next entry.
        stream.seek(member.info.header_offset + LOCAL_NAME_LENGTH_AT)
        lengths = stream.read(4)
        name_length, extra_length = struct.unpack("<HH", lengths) if len(lengths) == 4 else (0, 0)
        start = member.info.header_offset + LOCAL_HEADER_BYTES + name_length + extra_length
        if start + member.info.compress_size > end:
            raise ArchiveError(
                f"{member.path} overlaps the next entry of the zip (its data claims more room than it has): "
                "entries that share bytes are a zip bomb, so the zip was refused."
            )


def _check_total(declared: int, archive: zipfile.ZipFile, limits: ZipLimits) -> None:
    if declared > limits.max_total_bytes:
        raise ArchiveError(
            f"The zip's files add up to {_mb(declared)} once inflated; the limit is {_mb(limits.max_total_bytes)}."
        )
    compressed = max(archive.start_dir, 1)
    if declared > limits.ratio_floor_bytes and declared > limits.max_ratio * compressed:
        raise ArchiveError(
            f"The zip's files inflate {declared / compressed:,.0f} times in all (from {compressed:,} bytes to "
            f"{_mb(declared)}); more than {limits.max_ratio:.0f} times is treated as a zip bomb, so the zip was "
            "refused."
        )


def _check_ratio(path: str, inflated: int, compressed: int, limits: ZipLimits) -> None:
    if inflated > limits.ratio_floor_bytes and inflated > limits.max_ratio * max(compressed, 1):
        raise ArchiveError(
            f"{path} inflates {inflated / max(compressed, 1):,.0f} times (from {compressed:,} bytes to "
            f"{_mb(inflated)}); more than {limits.max_ratio:.0f} times is treated as a zip bomb, so the zip "
            "was refused."
        )


class Reader:
    """Reads members' bytes, counting what inflation actually produces across the whole zip."""

    def __init__(self, archive: zipfile.ZipFile, limits: ZipLimits):
        self.archive, self.limits = archive, limits
        self.bytes_inflated = 0

    def read(self, member: Member) -> bytes:
        """The member's bytes. Raises :class:`ArchiveError` when the zip as a whole breaks a
        limit, and ``zipfile.BadZipFile``/``OSError`` when only this member is damaged."""
        cap = min(member.info.file_size, self.limits.max_file_bytes)
        parts, produced = [], 0
        try:
            with self.archive.open(member.info) as stream:
                while chunk := stream.read(min(CHUNK, cap + 1 - produced)):
                    produced += len(chunk)
                    self.bytes_inflated += len(chunk)
                    if produced > cap:
                        raise zipfile.BadZipFile(f"{member.path} inflates past its declared {cap:,} bytes")
                    if self.bytes_inflated > self.limits.max_total_bytes:
                        raise ArchiveError(
                            f"The zip inflates to more than {_mb(self.limits.max_total_bytes)}; that is the limit."
                        )
                    _check_ratio(member.path, produced, member.info.compress_size, self.limits)
                    parts.append(chunk)
        except (ArchiveError, zipfile.BadZipFile):
            raise
        except Exception as error:  # zlib.error, NotImplementedError, RuntimeError, EOFError...: this member only
            raise zipfile.BadZipFile(f"{member.path} cannot be read ({type(error).__name__}: {error})") from error
        if produced != member.info.file_size:  # zipfile checks the CRC, not the length: a lying size
            declared = member.info.file_size
            raise zipfile.BadZipFile(f"{member.path} holds {produced:,} bytes where the zip declares {declared:,}")
        return b"".join(parts)

    def read_all(self, members: list[Member]) -> Iterator[tuple[Member, bytes | Exception]]:
        """Each member with its bytes, or with the error that made this one member unreadable."""
        for member in members:
            try:
                yield member, self.read(member)
            except zipfile.BadZipFile as error:
                yield member, error
