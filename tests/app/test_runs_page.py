"""Runs and Compare pages: every run kept, compared, deleted, brought back in a new
session from the address, and shown read-only through a share link.

Every figure is checked against sklearn on the run's own stored probabilities.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import f1_score, roc_auc_score

from app import runs, state, workspace
from app.widgets import plain
from mlcore import predict, runstore

LABELS = ("dog", "cat", "indoor")


@pytest.fixture(scope="module")
def two_runs():
    """One session that trained for 1 epoch, then for 2 (the second run is the active one)."""
    from tests.app.conftest import Ui

    at = Ui.train_small_model(epochs=1)
    Ui.start_training(at, epochs=2)
    return Ui.wait_for_training(at)


def sklearn_board(run: runs.Run, thresholds: dict[str, float]) -> dict[str, float]:
    """The Runs and Compare tables' scores, computed independently."""
    y_true, y_score = run.evaluation.test.y_true, run.evaluation.test.y_score
    decided = (y_score >= np.array([thresholds[label] for label in LABELS])).astype(int)
    board = {f"ROC-AUC {label}": roc_auc_score(y_true[:, i], y_score[:, i]) for i, label in enumerate(LABELS)}
    board.update({f"F1 {label}": f1_score(y_true[:, i], decided[:, i]) for i, label in enumerate(LABELS)})
    board["micro F1"] = f1_score(y_true, decided, average="micro")
    board["macro F1"] = f1_score(y_true, decided, average="macro")
    return board


def png(value: int = 200) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_two_runs_of_a_session_are_both_listed_with_true_scores(two_runs, ui):
    at = ui.open_page(two_runs, "runs")
    assert not at.exception
    first, second = state.all_runs(at.session_state)
    assert first.stored is not None
    assert second.stored is not None
    table = at.dataframe[0].value
    assert list(table["epochs"]) == ["1/1", "2/2"]
    assert list(table["active"]) == ["", "●"]
    assert list(table["kept"]) == ["on the server", "on the server"]
    for row, run in zip(table.to_dict("records"), (first, second), strict=True):
        expected = sklearn_board(run, state.thresholds(run, at.session_state))
        for column, value in expected.items():
            assert row[column] == pytest.approx(value, abs=1e-9), column
    assert any(second.stored.share_token in code.value for code in at.code), "the share link is shown"


def test_compare_overlays_both_runs_and_marks_the_settings_that_differ(two_runs, ui):
    at = ui.open_page(two_runs, "compare")
    assert not at.exception
    first, second = state.all_runs(at.session_state)
    figure = ui.plotly_figures(at)[0]
    validation = {trace["meta"]: ui.array(trace["y"]) for trace in figure["data"] if "validation" in trace["name"]}
    assert len(validation) == 2, "one validation curve per run"
    names = list(validation)
    np.testing.assert_allclose(validation[names[0]], first.history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(validation[names[1]], second.history["val_loss"], rtol=1e-6)

    settings, scores = (frame.value for frame in at.dataframe)
    assert bool(settings.loc["epochs", "differs"]) is True
    assert list(settings.loc["epochs", names]) == ["1/1", "2/2"]
    assert bool(settings.loc["architecture", "differs"]) is False
    assert bool(settings.loc["image size", "differs"]) is False
    for name, run in zip(names, (first, second), strict=True):
        expected = sklearn_board(run, state.thresholds(run, at.session_state))
        for metric, value in expected.items():
            assert scores.loc[metric, name] == pytest.approx(value, abs=1e-9), (name, metric)


def test_a_new_session_on_the_same_address_gets_the_runs_and_thresholds_back(two_runs, ui):
    at = ui.open_page(two_runs, "evaluate")
    active = state.active_run(at.session_state)
    at.slider(key=state.threshold_key(active, "dog", at.session_state)).set_value(0.37).run()
    assert state.thresholds(active, at.session_state)["dog"] == 0.37
    address = ui.address(at)
    assert runstore.looks_like_token(address["ws"])
    assert address["thr.dog"] == "0.37"

    again = ui.open_page(ui.open_address({"ws": address["ws"]}), "runs")  # no thresholds in this address
    assert not again.exception
    before, after = state.all_runs(at.session_state), state.all_runs(again.session_state)
    assert [run.id for run in after] == [run.id for run in before]
    assert state.active_run(again.session_state).id == active.id, "the newest run is active again"
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(new.evaluation.test.y_score, old.evaluation.test.y_score)
        np.testing.assert_array_equal(new.evaluation.validation.y_true, old.evaluation.validation.y_true)
        assert new.history == old.history
    assert state.thresholds(state.active_run(again.session_state), again.session_state)["dog"] == 0.37


def test_the_address_carries_the_settings_into_a_fresh_session(two_runs, ui):
    address = ui.address(two_runs)
    settings = {key: value for key, value in address.items() if key.startswith(("data.", "train."))}
    assert settings["data.source"] == "demo"
    assert settings["train.epochs"] == "2"
    fresh = ui.open_address(settings)
    assert not fresh.exception
    assert state.data_config(fresh.session_state) == state.data_config(two_runs.session_state)
    assert state.train_config(fresh.session_state) == state.train_config(two_runs.session_state)
    assert state.all_runs(fresh.session_state) == [], "settings alone open no workspace"

    bad = ui.open_address({"data.demo_images": "1000000000", "train.epochs": "lots", "train.batch_size": "7"})
    assert not bad.exception
    warnings = " ".join(warning.value for warning in bad.warning)
    assert plain("demo_images must be between 8 and 100,000") in warnings  # not a billion generated images
    assert plain("train.epochs: invalid literal") in warnings
    assert plain("batch size 7 is not one of 8, 16, 32, 64, 128") in warnings
    assert state.data_config(bad.session_state).demo_images == 800, "the defaults stay"
    assert state.train_config(bad.session_state).batch_size == 32
    for page in ("data", "train"):  # and the forms still draw
        ui.open_page(bad, page)
        assert not bad.exception


def test_a_share_link_shows_the_run_read_only_in_another_session(two_runs, ui):
    owner_run = state.active_run(two_runs.session_state)
    visitor = ui.open_address({"run": owner_run.stored.share_token})
    assert not visitor.exception
    (shared,) = state.all_runs(visitor.session_state)
    assert shared.read_only
    assert state.workspace_token(visitor.session_state) != state.workspace_token(two_runs.session_state)
    assert state.thresholds(shared, visitor.session_state) == state.thresholds(owner_run, two_runs.session_state)

    ui.open_page(visitor, "evaluate")
    assert not visitor.exception
    assert any("was shared with you by link" in info.value for info in visitor.info)
    assert not [s for s in visitor.slider if s.label.startswith(("Threshold for", "Global threshold"))]
    np.testing.assert_array_equal(shared.evaluation.test.y_score, owner_run.evaluation.test.y_score)

    ui.open_page(visitor, "predict")  # its model, read from the store
    visitor.file_uploader(key=ui.key(visitor, "predict", "images")).set_value(("grey.png", png(), "image/png")).run()
    assert not visitor.exception
    shown = visitor.dataframe[0].value.set_index("file").loc["grey.png", list(LABELS)].to_numpy(float)
    image = predict.to_model_input(predict.load_image(png()), owner_run.image_size)
    np.testing.assert_allclose(shown, predict.predict_proba(owner_run.model, image[None])[0], atol=1e-5)

    ui.open_page(visitor, "runs")
    visitor.button(key=ui.key(visitor, "shared", f"copy.{shared.id}")).click().run()
    copy = state.active_run(visitor.session_state)
    assert copy.source == "trained"
    assert not copy.read_only
    assert copy.stored.run_id != owner_run.stored.run_id
    ui.open_page(visitor, "evaluate")
    assert visitor.slider(key=state.threshold_key(copy, "dog", visitor.session_state)).value == pytest.approx(
        state.thresholds(owner_run, two_runs.session_state)["dog"]
    )
    owner_again = ui.open_address({"ws": state.workspace_token(two_runs.session_state)})
    assert len(state.all_runs(owner_again.session_state)) == 2, "the copy went to the visitor's workspace"


def test_a_wrong_token_is_refused_and_a_new_visitor_sees_no_one_elses_runs(two_runs, ui):
    guesser = ui.open_address({"run": runstore.new_token()})
    assert not guesser.exception
    assert any("share link is unknown or has expired" in error.value for error in guesser.error)
    assert state.all_runs(guesser.session_state) == []

    forged = ui.open_address({"ws": "not a token; DROP TABLE"})
    assert any("workspace key in this address is not valid" in w.value for w in forged.warning)
    assert state.all_runs(forged.session_state) == []

    stranger = ui.open_page(ui.new_app(), "runs")
    assert state.all_runs(stranger.session_state) == []
    assert any("No runs yet in this workspace" in info.value for info in stranger.info)
    assert state.workspace_token(stranger.session_state) != state.workspace_token(two_runs.session_state)


def test_with_the_store_off_runs_stay_in_the_session_without_links(two_runs, ui, monkeypatch):
    monkeypatch.setenv("MLCORE_RUN_STORE", "off")
    bundle = runs.bundle_bytes(state.active_run(two_runs.session_state), {"dog": 0.5, "cat": 0.5, "indoor": 0.5})
    at = ui.open_page(ui.new_app(), "predict")
    at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value(("run.zip", bundle, "application/zip")).run()
    assert not at.exception
    (loaded,) = state.all_runs(at.session_state)
    assert loaded.stored is None
    ui.open_page(at, "runs")
    assert any("keeps no runs" in info.value for info in at.info)
    assert list(at.dataframe[0].value["kept"]) == ["this session only"]
    assert not [code for code in at.code if "?run=" in code.value], "no share link without a store"


def test_a_name_chosen_by_the_owner_is_shown_as_text_to_the_visitor(two_runs, ui):
    at = ui.open_page(two_runs, "runs")
    run = state.active_run(at.session_state)
    hostile = "![t](https://attacker.example/p.png) **URGENT** [Sign in](https://attacker.example/login)"
    at.text_input(key=ui.key(at, "runs", f"name.{run.id}")).set_value(hostile).run()
    visitor = ui.open_page(ui.open_address({"run": run.stored.share_token}), "runs")
    notice = next(info.value for info in visitor.info if "was shared with you by link" in info.value)
    caption = visitor.sidebar.caption[1].value
    for shown in (notice, caption):
        for markup in ("![t](", "[Sign in](", "**URGENT**"):
            assert markup not in shown, shown
        assert r"\!\[t\]\(https\:" in shown, shown
    at.text_input(key=ui.key(at, "runs", f"name.{run.id}")).set_value("two epochs").run()


def test_damaged_stored_values_cost_only_the_damaged_run(two_runs, ui):
    first, second = state.all_runs(two_runs.session_state)
    folder = workspace.run_store().root / "runs"
    entry_path = folder / first.stored.run_id / runstore.ENTRY
    entry = entry_path.read_text()
    damaged = {**json.loads(entry), "thresholds": {"dog": "x", "cat": 1e308, "indoor": 0.25}}
    entry_path.write_text(json.dumps(damaged))
    scores = folder / second.stored.run_id / runstore.SCORES
    saved_scores = scores.read_bytes()
    scores.write_bytes(b"not an npz")
    try:
        at = ui.open_address({"ws": state.workspace_token(two_runs.session_state)})
        assert not at.exception
        (restored,) = state.all_runs(at.session_state)
        assert restored.id == first.id
        assert state.thresholds(restored, at.session_state) == {"dog": 0.5, "cat": 0.5, "indoor": 0.25}
        assert any(f"{second.name!r} could not be read and was skipped" in w.value for w in at.warning)
        for page in ("evaluate", "runs", "compare"):
            ui.open_page(at, page)
            assert not at.exception
    finally:
        entry_path.write_text(entry)
        scores.write_bytes(saved_scores)


def test_a_row_click_activates_a_run_and_deleting_it_removes_it_everywhere(two_runs, ui):
    """In a workspace of its own: two loaded bundles, named after their files."""
    bundle = runs.bundle_bytes(state.active_run(two_runs.session_state), {"dog": 0.5, "cat": 0.5, "indoor": 0.5})
    at = ui.open_page(ui.new_app(), "predict")
    for name in ("first.zip", "second.zip"):
        at.file_uploader(key=ui.key(at, "predict", "bundle")).set_value((name, bundle, "application/zip")).run()
    first, second = state.all_runs(at.session_state)
    assert (first.name, second.name) == ("first.zip", "second.zip")
    assert first.label == "first.zip (loaded bundle)"
    stored = workspace.run_store().workspace_runs(state.workspace_token(at.session_state))[0]
    assert [entry.name for entry in stored] == ["first.zip", "second.zip"]
    assert [entry.source for entry in stored] == ["bundle", "bundle"]

    ui.open_page(at, "runs")
    at.session_state[ui.key(at, "runs", "table")] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert state.active_run(at.session_state).id == first.id
    assert list(at.dataframe[0].value["active"]) == ["●", ""]

    at.text_input(key=ui.key(at, "runs", f"name.{first.id}")).set_value("the first one").run()
    assert state.active_run(at.session_state).name == "the first one"
    at.session_state[ui.key(at, "runs", "table")] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()  # a click on the last row, which is then deleted: the table must not keep pointing at it
    assert state.active_run(at.session_state).id == second.id
    at.button(key=ui.key(at, "runs", f"delete.{second.id}")).click().run()
    assert not at.exception
    assert [run.id for run in state.all_runs(at.session_state)] == [first.id]
    assert state.active_run(at.session_state).id == first.id
    assert not (workspace.run_store().root / "runs" / second.stored.run_id).exists()
    restored = ui.open_address({"ws": state.workspace_token(at.session_state)})
    assert [(run.id, run.name) for run in state.all_runs(restored.session_state)] == [(first.id, "the first one")]
    gone = ui.open_address({"run": second.stored.share_token})
    assert any("unknown or has expired" in error.value for error in gone.error)


def test_thresholds_in_an_address_never_land_on_another_run(two_runs, ui):
    token = state.workspace_token(two_runs.session_state)
    before = {run.id: state.thresholds(run, two_runs.session_state) for run in state.all_runs(two_runs.session_state)}
    at = ui.open_address({"ws": token, "active": "0123456789abcdef", "thr.dog": "0.11"})
    assert not at.exception
    assert any(plain("its thresholds belong to a run that is not in this workspace") in w.value for w in at.warning)
    for run in state.all_runs(at.session_state):
        assert state.thresholds(run, at.session_state) == before[run.id]


def test_markup_in_an_address_is_shown_as_text(ui):
    at = ui.open_address(
        {"data.seed": "[Sign in](https://evil.example)", "data.source": "![x](https://evil.example/i)"}
    )
    assert not at.exception
    shown = " ".join(warning.value for warning in at.warning)
    assert "[Sign in](" not in shown, shown
    assert "![x](" not in shown, shown
    assert plain("[Sign in](ht") in shown  # as text, cut short


def test_the_runs_page_picks_up_runs_another_tab_of_the_workspace_kept(two_runs, ui):
    bundle = runs.bundle_bytes(state.active_run(two_runs.session_state), {"dog": 0.5, "cat": 0.5, "indoor": 0.5})
    first_tab = ui.open_page(ui.new_app(), "predict")
    first_tab.file_uploader(key=ui.key(first_tab, "predict", "bundle")).set_value(("a.zip", bundle, "application/zip"))
    first_tab.run()
    second_tab = ui.open_page(ui.open_address({"ws": state.workspace_token(first_tab.session_state)}), "runs")
    assert [run.name for run in state.all_runs(second_tab.session_state)] == ["a.zip"]

    first_tab.file_uploader(key=ui.key(first_tab, "predict", "bundle")).set_value(("b.zip", bundle, "application/zip"))
    first_tab.run()
    second_tab.run()
    assert not second_tab.exception
    assert [run.name for run in state.all_runs(second_tab.session_state)] == ["a.zip", "b.zip"]
    assert state.active_run(second_tab.session_state).name == "a.zip", "the active run stays as it was"
    assert list(second_tab.dataframe[0].value["name"]) == ["a.zip", "b.zip"]
