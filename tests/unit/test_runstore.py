"""The run store: workspaces apart, share tokens, the cap, damaged entries, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mlcore import runstore

LABELS = ("dog", "cat", "indoor")


def scores(seed: int = 0, n: int = 12) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        split: (rng.integers(0, 2, (n, 3)).astype(np.float32), rng.random((n, 3)).astype(np.float32))
        for split in ("validation", "test")
    }


def save(store: runstore.RunStore, workspace: str, name: str, *, size: int = 100, seed: int = 0):
    return store.save(
        workspace,
        name=name,
        source="trained",
        bundle=b"B" * size,
        scores=scores(seed),
        thresholds={"dog": 0.4, "cat": 0.5, "indoor": 0.6},
        threshold_origin={},
    )


@pytest.fixture
def store(tmp_path):
    return runstore.RunStore(tmp_path / "store")


def test_runs_are_listed_for_their_workspace_only(store):
    mine, theirs = runstore.new_token(), runstore.new_token()
    first, second = save(store, mine, "first"), save(store, mine, "second")
    save(store, theirs, "someone else's")
    listed, problems = store.workspace_runs(mine)
    assert [run.name for run in listed] == ["first", "second"]
    assert [run.run_id for run in listed] == [first.run_id, second.run_id]
    assert problems == []
    assert [run.name for run in store.workspace_runs(theirs)[0]] == ["someone else's"]
    assert store.workspace_runs(runstore.new_token()) == ([], [])


def test_scores_and_thresholds_come_back_exactly(store):
    token = runstore.new_token()
    kept = save(store, token, "run", seed=3)
    loaded = store.load(kept.run_id)
    for split, (targets, probabilities) in scores(3).items():
        np.testing.assert_array_equal(loaded.scores[split][0], targets)
        np.testing.assert_array_equal(loaded.scores[split][1], probabilities)
    assert loaded.bundle.read_bytes() == b"B" * 100
    store.set_thresholds(token, kept.run_id, {"dog": 0.2}, {"dog": {"method": "manual"}})
    again = store.workspace_runs(token)[0][0]
    assert again.thresholds == {"dog": 0.2}
    assert again.threshold_origin == {"dog": {"method": "manual"}}


def test_no_workspace_token_is_written_to_disk(store):
    token = runstore.new_token()
    save(store, token, "run")
    for path in store.root.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_tokens_are_long_random_and_url_safe():
    tokens = {runstore.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) == 32 and runstore.looks_like_token(token) for token in tokens)  # 192 bits each


def test_a_share_token_opens_its_run_and_nothing_else_does(store):
    token = runstore.new_token()
    kept = save(store, token, "shared")
    assert store.find_shared(kept.share_token).run_id == kept.run_id
    assert store.find_shared(runstore.new_token()) is None  # well formed, unknown
    assert store.find_shared(token) is None  # a workspace token is not a share token
    for junk in ("", "short", "x" * 500, "../../etc/passwd-aaaaaaaaaaaaaaaaaa", "ŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝŝ"):
        assert store.find_shared(junk) is None


def test_only_the_owning_workspace_renames_or_deletes(store):
    owner, other = runstore.new_token(), runstore.new_token()
    kept = save(store, owner, "run")
    with pytest.raises(runstore.StoreError, match="not in this workspace"):
        store.rename(other, kept.run_id, "mine now")
    with pytest.raises(runstore.StoreError, match="not in this workspace"):
        store.delete(other, kept.run_id)
    store.rename(owner, kept.run_id, "renamed")
    assert store.workspace_runs(owner)[0][0].name == "renamed"
    store.delete(owner, kept.run_id)
    assert store.workspace_runs(owner) == ([], [])
    assert not (store.root / "runs" / kept.run_id).exists()
    assert store.find_shared(kept.share_token) is None


def test_the_cap_on_runs_drops_the_oldest_first(tmp_path):
    store = runstore.RunStore(tmp_path, max_runs=2, workspace_runs=2)
    token = runstore.new_token()
    first, second, third = (save(store, token, name) for name in ("first", "second", "third"))
    assert [run.name for run in store.workspace_runs(token)[0]] == ["second", "third"]
    assert not (tmp_path / "runs" / first.run_id).exists()
    assert store.find_shared(first.share_token) is None
    assert store.find_shared(third.share_token).name == "third"
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == sorted([second.run_id, third.run_id])


def test_the_cap_on_bytes_drops_the_oldest_first_and_refuses_a_run_larger_than_it(tmp_path):
    probe = runstore.RunStore(tmp_path / "probe")
    one = save(probe, runstore.new_token(), "probe", size=1000).size  # bundle plus compressed scores
    cap = 2 * one + one // 2
    store = runstore.RunStore(tmp_path / "store", max_bytes=cap, workspace_bytes=cap)
    token = runstore.new_token()
    for name in ("first", "second", "third"):
        save(store, token, name, size=1000)
    assert [run.name for run in store.workspace_runs(token)[0]] == ["second", "third"]
    with pytest.raises(runstore.StoreError, match="more than the store keeps for a workspace"):
        save(store, token, "huge", size=3 * one)
    assert [run.name for run in store.workspace_runs(token)[0]] == ["second", "third"]


def test_a_damaged_entry_is_skipped_with_a_message(store):
    token = runstore.new_token()
    good, bad = save(store, token, "good"), save(store, token, "bad")
    (store.root / "runs" / bad.run_id / runstore.ENTRY).write_text("{not json")
    listed, problems = store.workspace_runs(token)
    assert [run.name for run in listed] == ["good"]
    assert len(problems) == 1
    assert "'bad' could not be read and was skipped" in problems[0]
    assert store.load(good.run_id).entry.name == "good"


def test_damaged_scores_or_a_missing_bundle_raise_a_store_error(store):
    token = runstore.new_token()
    first, second = save(store, token, "first"), save(store, token, "second")
    (store.root / "runs" / first.run_id / runstore.SCORES).write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(runstore.StoreError, match=f"stored run {first.run_id} could not be read"):
        store.load(first.run_id)
    (store.root / "runs" / second.run_id / runstore.BUNDLE).unlink()
    with pytest.raises(runstore.StoreError, match="bundle is missing"):
        store.load(second.run_id)


def test_a_damaged_index_is_rebuilt_from_the_entries(store):
    token = runstore.new_token()
    kept = save(store, token, "run")
    (store.root / runstore.INDEX).write_text("[1, 2")
    assert [run.run_id for run in store.workspace_runs(token)[0]] == [kept.run_id]
    assert store.find_shared(kept.share_token).run_id == kept.run_id


def test_a_failed_write_leaves_no_run_and_no_temporary_file(store, monkeypatch):
    token = runstore.new_token()
    save(store, token, "before")
    index_before = json.loads((store.root / runstore.INDEX).read_text())

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save(store, token, "during")
    monkeypatch.undo()
    assert json.loads((store.root / runstore.INDEX).read_text()) == index_before
    assert [path.name for path in store.root.iterdir() if path.name.startswith(".")] == []
    assert [run.name for run in store.workspace_runs(token)[0]] == ["before"]


def test_scores_added_later_are_kept_and_counted(store):
    token = runstore.new_token()
    kept = store.save(
        token, name="bundle", source="bundle", bundle=b"B" * 10, scores={}, thresholds={}, threshold_origin={}
    )
    assert store.load(kept.run_id).scores == {}
    store.set_scores(token, kept.run_id, scores(5), {"source": "demo", "image_size": 64})
    loaded = store.load(kept.run_id)
    np.testing.assert_array_equal(loaded.scores["test"][1], scores(5)["test"][1])
    assert loaded.entry.scored_on == {"source": "demo", "image_size": 64}
    size = 10 + len(runstore.scores_bytes(scores(5)))  # the bundle and the scores, each counted once
    assert loaded.entry.size == json.loads((store.root / runstore.INDEX).read_text())[kept.run_id]["bytes"] == size
    store.set_scores(token, kept.run_id, scores(5))
    assert json.loads((store.root / runstore.INDEX).read_text())[kept.run_id]["bytes"] == size


def test_a_store_without_room_for_one_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least one run"):
        runstore.RunStore(tmp_path, max_runs=0)


@pytest.mark.parametrize(
    "damage",
    [
        {"created": "yesterday"},
        {"created": None},
        {"bytes": -5},
        {"bytes": "many"},
        {"workspace": 7},
        "not an object",
    ],
)
def test_a_bad_index_row_is_left_out_and_the_others_still_work(store, damage):
    token = runstore.new_token()
    good, bad = save(store, token, "good"), save(store, token, "bad")
    index = json.loads((store.root / runstore.INDEX).read_text())
    index[bad.run_id] = {**index[bad.run_id], **damage} if isinstance(damage, dict) else damage
    (store.root / runstore.INDEX).write_text(json.dumps(index))
    assert [run.name for run in store.workspace_runs(token)[0]] == ["good"]
    assert store.find_shared(bad.share_token) is None
    save(store, token, "after")  # writing works too, and drops the bad row for good
    assert [run.name for run in store.workspace_runs(token)[0]] == ["good", "after"]
    assert store.load(good.run_id).entry.name == "good"


def test_a_deeply_nested_index_is_rebuilt(store):
    token = runstore.new_token()
    kept = save(store, token, "run")
    (store.root / runstore.INDEX).write_text("[" * 100_000 + "]" * 100_000)
    assert [run.run_id for run in store.workspace_runs(token)[0]] == [kept.run_id]


@pytest.mark.parametrize(
    ("split", "targets", "probabilities", "message"),
    [
        ("test", [[0, 1, 0]], [[np.nan, 0.5, 0.5]], "probabilities are not all between 0 and 1"),
        ("test", [[0, 1, 0]], [[1.5, 0.5, 0.5]], "probabilities are not all between 0 and 1"),
        ("test", [[0, 2, 0]], [[0.5, 0.5, 0.5]], "targets are not all 0 or 1"),
        ("test", np.zeros((0, 3)), np.zeros((0, 3)), "do not fit"),
        ("validation", [[0, 1]], [[0.5, 0.5, 0.5]], "do not fit"),
    ],
)
def test_scores_the_pages_cannot_trust_are_refused(store, split, targets, probabilities, message):
    token = runstore.new_token()
    kept = save(store, token, "run")
    damaged = {**scores(), split: (np.asarray(targets, np.float32), np.asarray(probabilities, np.float32))}
    (store.root / "runs" / kept.run_id / runstore.SCORES).write_bytes(runstore.scores_bytes(damaged))
    with pytest.raises(runstore.StoreError, match=message):
        store.load(kept.run_id)


def test_two_store_objects_on_one_folder_lose_no_run_when_saving_at_once(tmp_path):
    import threading

    first, second = runstore.RunStore(tmp_path), runstore.RunStore(tmp_path)
    token = runstore.new_token()

    def save_many(store: runstore.RunStore, offset: int) -> None:
        for number in range(10):
            save(store, token, f"run {offset + number}")

    threads = [threading.Thread(target=save_many, args=(store, 10 * i)) for i, store in enumerate([first, second] * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(first.workspace_runs(token)[0]) == 40
    assert len(list((tmp_path / "runs").iterdir())) == 40


def test_a_failed_index_write_keeps_the_old_runs_and_not_the_new_one(tmp_path, monkeypatch):
    store = runstore.RunStore(tmp_path, max_runs=1, workspace_runs=1)
    token = runstore.new_token()
    old = save(store, token, "old")

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runstore, "write_atomic", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save(store, token, "new")  # would have dropped "old" to make room
    monkeypatch.undo()
    assert [run.run_id for run in store.workspace_runs(token)[0]] == [old.run_id]
    assert [path.name for path in (tmp_path / "runs").iterdir()] == [old.run_id]


def test_one_workspace_over_its_share_drops_its_own_oldest_runs_not_other_peoples(tmp_path):
    store = runstore.RunStore(tmp_path, max_runs=8)  # a workspace keeps at most 2
    others, flooder = runstore.new_token(), runstore.new_token()
    kept = [save(store, others, f"other {number}") for number in range(2)]
    for number in range(20):
        save(store, flooder, f"flood {number}")
    assert [run.name for run in store.workspace_runs(flooder)[0]] == ["flood 18", "flood 19"]
    assert [run.run_id for run in store.workspace_runs(others)[0]] == [run.run_id for run in kept]
    assert store.find_shared(kept[0].share_token) is not None


def test_a_lost_index_is_rebuilt_from_the_runs_on_disk(store):
    token = runstore.new_token()
    first = save(store, token, "first")
    (store.root / runstore.INDEX).unlink()
    second = save(store, token, "second")
    assert [run.run_id for run in store.workspace_runs(token)[0]] == [first.run_id, second.run_id]
