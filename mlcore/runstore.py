"""A run store on disk: every kept run as its bundle plus its probabilities, and an index.

Runs belong to workspaces. A workspace is known only by the hash of its token (the
secret a person keeps in their address bar), so the files on disk never reveal a
workspace token. Each run also has a share token of its own that opens it, read-only,
to whoever has the link (its owner's entry keeps it, so the link can be shown again).
Tokens carry 192 random bits. One server process owns a store folder: the lock that
orders writes is per process.

Layout under the root::

    index.json               {run id: {workspace, share, created, bytes, name}}
    runs/<run id>/bundle.zip  the run bundle (model weights and run.json)
    runs/<run id>/scores.npz  targets and probabilities of the validation and test splits
                              (absent for a loaded bundle not scored yet)
    runs/<run id>/entry.json  name, where the run came from, share token, thresholds and their origins

Every write goes to a temporary name first and is renamed into place, so a crash
never leaves half a file. A run whose files are missing or damaged is skipped and
reported, never fatal. The store keeps at most ``max_runs`` runs and ``max_bytes``
bytes and drops the oldest runs first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from mlcore.store import write_atomic

TOKEN_BYTES = 24
TOKEN_LENGTH = 32  # characters of token_urlsafe(TOKEN_BYTES)
INDEX = "index.json"
BUNDLE = "bundle.zip"
SCORES = "scores.npz"
ENTRY = "entry.json"
SPLITS = ("validation", "test")
INDEXED = ("workspace", "share", "created", "bytes", "name")
MAX_NAME = 120
RUN_ID_LENGTH = 16  # hex digits
_FOLDER_LOCKS: dict[Path, threading.Lock] = {}  # one lock per store folder, shared by every RunStore on it
_FOLDER_LOCKS_GUARD = threading.Lock()


class StoreError(RuntimeError):
    """A run that cannot be read or written; the message says which and why."""


def new_token() -> str:
    """An unguessable token for a workspace or a share link (URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_key(token: str) -> str:
    """What the store keeps of a token: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(text: object) -> bool:
    """A string that could be one of our tokens (so junk from a URL is never looked up)."""
    return (
        isinstance(text, str)
        and len(text) == TOKEN_LENGTH
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)
    )


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """One run in the store: what lists show without loading the model."""

    run_id: str
    name: str
    source: str  # "trained" or "bundle"
    created: float
    size: int
    share_token: str
    thresholds: dict
    threshold_origin: dict
    scored_on: dict | None = None  # the data config of scores added later, when it is not the bundle's own


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A stored run's bundle file and probabilities, ready to become a live run."""

    entry: StoredRun
    bundle: Path
    scores: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (targets, probabilities); empty: not scored


def scores_bytes(scores: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Targets and probabilities per split as the store keeps them (a compressed ``.npz``)."""
    arrays = {}
    for split, (targets, probabilities) in scores.items():
        arrays[f"{split}_targets"] = np.asarray(targets, dtype=np.float32)
        arrays[f"{split}_probabilities"] = np.asarray(probabilities, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _check_scores(split: str, targets: np.ndarray, probabilities: np.ndarray) -> None:
    """Scores the pages can trust: 0/1 targets, probabilities in [0, 1], at least one row."""
    if targets.shape != probabilities.shape or targets.ndim != 2 or not len(targets):
        raise ValueError(f"{split} targets {targets.shape} and probabilities {probabilities.shape} do not fit")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError(f"{split} targets are not all 0 or 1")
    if not (np.isfinite(probabilities).all() and (probabilities >= 0).all() and (probabilities <= 1).all()):
        raise ValueError(f"{split} probabilities are not all between 0 and 1")


def _read_scores(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as arrays:
        scores = {}
        for split in SPLITS:
            if f"{split}_targets" in arrays:
                targets, probabilities = arrays[f"{split}_targets"], arrays[f"{split}_probabilities"]
                _check_scores(split, targets, probabilities)
                scores[split] = (targets, probabilities)
    if "test" not in scores:
        raise ValueError("no test probabilities")
    return scores


def _oldest_over(rows: dict[str, dict], max_runs: int, max_bytes: int, keep: str) -> list[str]:
    """The oldest rows (never ``keep``) whose removal brings ``rows`` within the caps."""
    count, total, over = len(rows), sum(row["bytes"] for row in rows.values()), []
    for run_id in sorted(rows, key=lambda key: rows[key]["created"]):
        if count <= max_runs and total <= max_bytes:
            break
        if run_id != keep:
            count, total = count - 1, total - rows[run_id]["bytes"]
            over.append(run_id)
    return over


def _valid_row(run_id: object, row: object) -> bool:
    """An index row the store can rely on; anything else (hand edits, damage) is left out."""
    return (
        isinstance(run_id, str)
        and len(run_id) == RUN_ID_LENGTH
        and all(c in "0123456789abcdef" for c in run_id)
        and isinstance(row, dict)
        and all(isinstance(row.get(key), str) for key in ("workspace", "share", "name"))
        and all(
            isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
            for key in ("created", "bytes")
        )
        and math.isfinite(row["created"])
        and 0 <= row["bytes"] < 2**63
    )


class RunStore:
    """Runs of all workspaces under one folder; safe to share between sessions of one server."""

    def __init__(
        self,
        root: Path | str,
        *,
        max_runs: int = 200,
        max_bytes: int = 2 * 1024**3,
        workspace_runs: int | None = None,
        workspace_bytes: int | None = None,
    ):
        """``max_runs`` and ``max_bytes`` cap the whole store; ``workspace_runs`` and ``workspace_bytes``
        (default: a quarter of each) cap one workspace, whose own oldest runs go first, so that one
        visitor cannot push everyone else's runs out."""
        if max_runs < 1 or max_bytes < 1:
            raise ValueError(f"the store needs room for at least one run, got {max_runs} runs, {max_bytes} bytes")
        self.root = Path(root).expanduser()
        self.max_runs, self.max_bytes = int(max_runs), int(max_bytes)
        self.workspace_runs_cap = int(workspace_runs or max(1, max_runs // 4))
        self.workspace_bytes_cap = int(workspace_bytes or max(1, max_bytes // 4))
        with _FOLDER_LOCKS_GUARD:  # two objects on one folder (new limits, a cleared cache) still take turns
            self._lock = _FOLDER_LOCKS.setdefault(self.root.resolve(), threading.Lock())

    # --- index ----------------------------------------------------------------------------

    def _index(self) -> dict[str, dict]:
        """The index, with only well-formed rows; a damaged index is rebuilt from the entries."""
        path = self.root / INDEX
        try:
            index = json.loads(path.read_text())
        except FileNotFoundError:  # a first run, or an index lost: the runs on disk still count
            return self._rebuild_index() if (self.root / "runs").is_dir() else {}
        except (OSError, ValueError, RecursionError):
            return self._rebuild_index()
        if not isinstance(index, dict):
            return self._rebuild_index()
        return {run_id: row for run_id, row in index.items() if _valid_row(run_id, row)}

    def _rebuild_index(self) -> dict[str, dict]:
        """The index read back from the entries, and saved so the next read need not do it again
        (every caller holds the lock)."""
        index = {}
        for folder in sorted((self.root / "runs").glob("*")):
            try:
                entry = json.loads((folder / ENTRY).read_text())
                row = {key: entry[key] for key in INDEXED}
            except (OSError, ValueError, KeyError, TypeError, RecursionError):
                continue
            if _valid_row(folder.name, row):
                index[folder.name] = row
        with contextlib.suppress(OSError):  # a read-only or full disk: it is rebuilt again next time
            self._save_index(index)
        return index

    def _save_index(self, index: dict[str, dict]) -> None:
        write_atomic(self.root / INDEX, json.dumps(index, indent=1).encode())

    # --- writing --------------------------------------------------------------------------

    def save(
        self,
        workspace_token: str,
        *,
        name: str,
        source: str,
        bundle: bytes,
        scores: dict[str, tuple[np.ndarray, np.ndarray]],
        thresholds: dict,
        threshold_origin: dict,
        scored_on: dict | None = None,
    ) -> StoredRun:
        """Keep a run for a workspace; returns its entry (with its new share token).
        ``scores`` may be empty (a bundle not scored yet); ``scored_on`` is the data config of scores
        that are not the bundle's own. Raises :class:`StoreError` or ``OSError``."""
        run_id, share = secrets.token_hex(RUN_ID_LENGTH // 2), new_token()
        score_bytes = scores_bytes(scores) if scores else b""
        size = len(bundle) + len(score_bytes)
        self._check_size(size)
        entry = {
            "workspace": token_key(workspace_token),
            "share": token_key(share),
            "share_token": share,
            "created": time.time(),
            "bytes": size,
            "name": str(name)[:MAX_NAME],
            "source": source,
            "thresholds": thresholds,
            "threshold_origin": threshold_origin,
            "scored_on": scored_on,
        }
        staging = Path(tempfile.mkdtemp(dir=self._ensure_root(), prefix=".new-"))
        try:
            (staging / BUNDLE).write_bytes(bundle)
            if score_bytes:
                (staging / SCORES).write_bytes(score_bytes)
            (staging / ENTRY).write_text(json.dumps(entry, default=float))
            with self._lock:
                (self.root / "runs").mkdir(exist_ok=True)
                folder = self.root / "runs" / run_id
                os.replace(staging, folder)  # the whole run appears at once
                try:
                    index = self._index()
                    index[run_id] = {key: entry[key] for key in INDEXED}
                    self._commit(index, keep=run_id)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)  # not in the index: not kept
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._stored(run_id, entry)

    def _check_size(self, size: int) -> None:
        if size > min(self.max_bytes, self.workspace_bytes_cap):
            raise StoreError(
                f"This run takes {size / 2**20:.1f} MB, more than the store keeps for a workspace "
                f"({min(self.max_bytes, self.workspace_bytes_cap) / 2**20:.1f} MB)."
            )

    def set_scores(
        self,
        workspace_token: str,
        run_id: str,
        scores: dict[str, tuple[np.ndarray, np.ndarray]],
        scored_on: dict | None = None,
    ) -> None:
        """Keep the probabilities of a run scored after it was stored (a loaded bundle), and the
        data config they were computed on."""
        data = scores_bytes(scores)
        with self._lock:
            index = self._owned(workspace_token, run_id)
            size = self.bundle_path(run_id).stat().st_size + len(data)  # the bundle and the new scores
            self._check_size(size)
            write_atomic(self.root / "runs" / run_id / SCORES, data)
            self._change_entry(run_id, scored_on=scored_on, bytes=size)
            index[run_id]["bytes"] = size
            self._commit(index, keep=run_id)

    def _owned(self, workspace_token: str, run_id: str) -> dict[str, dict]:
        """The index, after checking that ``run_id`` belongs to the workspace (call under the lock)."""
        index = self._index()
        if index.get(run_id, {}).get("workspace") != token_key(workspace_token):
            raise StoreError("That run is not in this workspace (it may have been deleted or dropped).")
        return index

    def _ensure_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def _commit(self, index: dict[str, dict], *, keep: str) -> None:
        """Save the index without the oldest runs (never ``keep``, the run just written) that take its
        workspace, then the store, over their caps; then delete their files (a failed save deletes nothing)."""
        workspace = index[keep]["workspace"]
        own = {run_id: row for run_id, row in index.items() if row["workspace"] == workspace}
        dropped = _oldest_over(own, self.workspace_runs_cap, self.workspace_bytes_cap, keep)
        for run_id in dropped:
            del index[run_id]
        dropped += _oldest_over(index, self.max_runs, self.max_bytes, keep)
        for run_id in dropped:
            index.pop(run_id, None)
        self._save_index(index)
        for run_id in dropped:
            shutil.rmtree(self.root / "runs" / run_id, ignore_errors=True)

    def _update_entry(self, workspace_token: str, run_id: str, **changes) -> None:
        with self._lock:
            index = self._owned(workspace_token, run_id)
            entry = self._change_entry(run_id, **changes)
            if "name" in changes:
                index[run_id]["name"] = entry["name"]
                self._save_index(index)

    def _change_entry(self, run_id: str, **changes) -> dict:
        path = self.root / "runs" / run_id / ENTRY
        try:
            entry = json.loads(path.read_text())
            entry.update(changes)
        except (ValueError, TypeError, AttributeError, RecursionError) as error:
            raise StoreError(f"the stored run's entry is damaged ({error})") from error
        write_atomic(path, json.dumps(entry, default=float).encode())
        return entry

    def rename(self, workspace_token: str, run_id: str, name: str) -> None:
        self._update_entry(workspace_token, run_id, name=str(name)[:MAX_NAME])

    def set_thresholds(self, workspace_token: str, run_id: str, thresholds: dict, threshold_origin: dict) -> None:
        """Keep a run's tuned thresholds (what its share link shows)."""
        self._update_entry(workspace_token, run_id, thresholds=thresholds, threshold_origin=threshold_origin)

    def delete(self, workspace_token: str, run_id: str) -> None:
        with self._lock:
            index = self._owned(workspace_token, run_id)
            del index[run_id]
            self._save_index(index)
            shutil.rmtree(self.root / "runs" / run_id, ignore_errors=True)

    # --- reading --------------------------------------------------------------------------

    def _stored(self, run_id: str, entry: dict) -> StoredRun:
        return StoredRun(
            run_id=run_id,
            name=str(entry.get("name", run_id)),
            source=str(entry.get("source", "trained")),
            created=float(entry["created"]),
            size=int(entry["bytes"]),
            share_token=str(entry["share_token"]),
            thresholds=dict(entry.get("thresholds") or {}),
            threshold_origin=dict(entry.get("threshold_origin") or {}),
            scored_on=entry["scored_on"] if isinstance(entry.get("scored_on"), dict) else None,
        )

    def _entry(self, run_id: str) -> StoredRun:
        entry = json.loads((self.root / "runs" / run_id / ENTRY).read_text())
        if not isinstance(entry, dict):
            raise ValueError("entry.json is not an object")
        return self._stored(run_id, entry)

    def workspace_runs(self, workspace_token: str) -> tuple[list[StoredRun], list[str]]:
        """A workspace's runs, oldest first, and one message per run that could not be read."""
        key = token_key(workspace_token)
        with self._lock:
            index = self._index()
        found, problems = [], []
        for run_id, info in sorted(index.items(), key=lambda item: item[1].get("created", 0)):
            if info.get("workspace") != key:
                continue
            try:
                found.append(self._entry(run_id))
            except (OSError, ValueError, KeyError, TypeError) as error:
                problems.append(f"Stored run {info.get('name', run_id)!r} could not be read and was skipped ({error}).")
        return found, problems

    def find_shared(self, share_token: str) -> StoredRun | None:
        """The run a share link opens, or ``None`` for an unknown (or dropped) token."""
        if not looks_like_token(share_token):
            return None
        key = token_key(share_token)
        with self._lock:
            index = self._index()
        run_id = next((run_id for run_id, info in index.items() if info.get("share") == key), None)
        if run_id is None:
            return None
        try:
            return self._entry(run_id)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def bundle_path(self, run_id: str) -> Path:
        """Where a run's bundle lies (it may have been dropped since it was listed)."""
        return self.root / "runs" / run_id / BUNDLE

    def load(self, run_id: str) -> LoadedRun:
        """A run's entry, bundle file and probabilities; :class:`StoreError` when they cannot be read."""
        folder = self.root / "runs" / run_id
        try:
            if not (folder / BUNDLE).is_file():
                raise FileNotFoundError("its bundle is missing")
            return LoadedRun(self._entry(run_id), folder / BUNDLE, _read_scores(folder / SCORES))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise StoreError(f"The stored run {run_id} could not be read ({error}).") from error
