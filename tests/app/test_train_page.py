"""The Train page: a background job started by the form, live progress, Stop, limits, results."""

from __future__ import annotations

import numpy as np
import pytest

from app import jobs
from mlcore import datasets, predict

pytestmark = pytest.mark.timeout(900)


def test_training_through_the_form_finishes_with_curves_summary_and_bundle(trained_app, ui):
    at = ui.open_page(trained_app, "train")

    assert not at.exception
    assert [success.value for success in at.success] == ["Training finished."]
    run = at.session_state["mlapp.runs"]["trained"]
    assert run.metadata["epochs_completed"] == 2 and not run.metadata["stopped_early"]
    assert {metric.label: metric.value for metric in at.metric}["Epochs"] == "2/2"
    curves = ui.plotly_figures(at)[-1]
    by_name = {}
    for trace in curves["data"]:
        by_name.setdefault(trace["name"], []).append(trace["y"])
    assert set(by_name) == {"train", "validation"}
    assert by_name["train"][0] == pytest.approx(run.history["loss"])
    assert by_name["validation"][0] == pytest.approx(run.history["val_loss"])
    assert at.get("download_button"), "the run bundle can be downloaded"
    assert any("SYNTHETIC" in warning.value for warning in at.warning)


def test_the_worker_scores_the_test_split_once_with_the_trained_model(trained_app):
    run = trained_app.session_state["mlapp.runs"]["trained"]
    splits = datasets.load_splits(run.data_config)
    np.testing.assert_array_equal(run.evaluation.y_true, splits.test.targets)
    np.testing.assert_allclose(run.evaluation.y_score, predict.predict_proba(run.model, splits.test.images), atol=1e-5)


def test_other_sessions_do_not_see_this_sessions_model(trained_app, ui):
    assert trained_app.session_state["mlapp.runs"]["trained"] is not None
    other = ui.new_app()
    assert other.session_state["mlapp.runs"] == {"trained": None, "bundle": None}
    assert any("None yet" in caption.value for caption in other.sidebar.caption)


def test_stop_ends_training_early_keeps_the_model_and_page_switches_do_not_disturb_it(ui):
    at = ui.new_app()
    ui.apply_data_settings(at)
    ui.start_training(at, epochs=100, batch_size=8)
    assert at.button(key="w.train.start").disabled, "one job per session"

    ui.wait_until(at, lambda app: app.session_state["mlapp.job"].status().batch > 0)
    assert at.progress and "Epoch" in at.progress[0].text
    ui.open_page(at, "data")  # moving around the app leaves the worker alone
    ui.open_page(at, "evaluate")
    assert at.session_state["mlapp.job"].status().phase == "training"
    assert any("Training:" in p.text or "Epoch" in p.text for p in at.sidebar.get("progress"))

    ui.open_page(at, "train")
    at.button(key="w.train.stop").click().run()
    ui.wait_for_training(at)

    run = at.session_state["mlapp.runs"]["trained"]
    assert run.metadata["stopped_early"]
    assert run.metadata["epochs_completed"] < 100
    assert any("stopped" in warning.value for warning in at.warning)
    assert run.evaluation.y_score.shape == (len(run.evaluation.y_true), 3), "the partial model is evaluated"
    ui.open_page(at, "evaluate")
    assert not at.exception and at.dataframe, "the partial model can be evaluated"


def test_the_server_wide_limit_gives_a_clear_message(ui, monkeypatch):
    monkeypatch.setattr(jobs, "LIMITER", jobs.JobLimiter(0))
    at = ui.new_app()
    ui.apply_data_settings(at)
    ui.start_training(at)

    assert not at.exception
    assert any("limit" in error.value for error in at.error)
    assert at.session_state["mlapp.job"] is None


def test_a_failing_job_is_reported_not_raised(ui, monkeypatch):
    def explode(*args, **kwargs):
        raise MemoryError("out of memory while building the network")

    from mlcore import train

    monkeypatch.setattr(train, "train_model", explode)
    at = ui.new_app()
    ui.apply_data_settings(at)
    ui.start_training(at)
    ui.wait_for_training(at)

    assert not at.exception
    assert any("Training failed" in error.value and "out of memory" in error.value for error in at.error)
    assert jobs.LIMITER.active == 0, "a failed job gives its slot back"
