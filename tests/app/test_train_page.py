"""The Train page: a background job started by the form, live progress, Stop, limits, results."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app import jobs, state
from mlcore import datasets, model, predict

pytestmark = pytest.mark.timeout(900)


def test_training_through_the_form_finishes_with_curves_summary_and_bundle(trained_app, ui):
    at = ui.open_page(trained_app, "train")

    assert not at.exception
    assert [success.value for success in at.success] == ["Training finished."]
    run = state.trained_run(at.session_state)
    assert run.metadata["epochs_completed"] == 2
    assert not run.metadata["stopped_early"]
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


def test_the_worker_scores_the_validation_and_test_splits_once_with_the_trained_model(trained_app):
    run = state.trained_run(trained_app.session_state)
    splits = datasets.load_splits(run.data_config)
    for name in ("validation", "test"):
        split, scored = getattr(splits, name), getattr(run.evaluation, name)
        np.testing.assert_array_equal(scored.y_true, split.targets)
        np.testing.assert_allclose(scored.y_score, predict.predict_proba(run.model, split.images), atol=1e-5)


def test_the_validation_curve_ends_at_the_whole_validation_splits_loss(trained_app, ui):
    """The last point of the validation loss curve is the binary cross-entropy of the
    final model over every validation image (the seed network has no batch norm to recalibrate)."""
    at = ui.open_page(trained_app, "train")
    run = state.trained_run(at.session_state)
    splits = datasets.load_splits(run.data_config)
    assert len(splits.validation) % run.train_config.batch_size, "a partial last batch, whose loss differs"
    y_true, y_score = splits.validation.targets, predict.predict_proba(run.model, splits.validation.images)
    clipped = np.clip(y_score.astype(np.float64), 1e-7, 1 - 1e-7)
    bce = -np.mean(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped))
    curves = ui.plotly_figures(at)[-1]
    shown = next(trace["y"] for trace in curves["data"] if trace["name"] == "validation")
    assert shown[-1] == pytest.approx(bce, abs=1e-4)
    table = at.dataframe[0].value  # per label: validation AUC beside test ROC-AUC
    for index in range(len(run.label_names)):
        if len(set(y_true[:, index])) < 2:
            continue  # AUC is undefined on a split with one class
        # Keras buckets scores into 200 thresholds: on a split of ten images that moves AUC by a few hundredths
        # (tests/unit/test_training_numbers.py holds it to 0.01 on a larger split).
        assert table.iloc[index, 0] == pytest.approx(roc_auc_score(y_true[:, index], y_score[:, index]), abs=0.05)
        assert table.iloc[index, 1] == pytest.approx(
            roc_auc_score(splits.test.targets[:, index], run.evaluation.test.y_score[:, index]), abs=1e-9
        )


def test_other_sessions_do_not_see_this_sessions_model(trained_app, ui):
    assert state.trained_run(trained_app.session_state) is not None
    other = ui.new_app()
    assert state.trained_run(other.session_state) is None
    assert state.bundle_run(other.session_state) is None
    assert any("None yet" in caption.value for caption in other.sidebar.caption)


def test_stop_ends_training_early_keeps_the_model_and_page_switches_do_not_disturb_it(ui):
    at = ui.new_app()
    ui.apply_data_settings(at)
    ui.start_training(at, epochs=100, batch_size=8)
    assert at.button(key=ui.key(at, "train", "start")).disabled, "one job per session"

    ui.wait_until(at, lambda app: state.job(app.session_state).status().batch > 0)
    assert at.progress
    assert "Epoch" in at.progress[0].text
    ui.open_page(at, "data")  # moving around the app leaves the worker alone
    ui.open_page(at, "evaluate")
    assert state.job(at.session_state).status().phase == "training"
    assert any("Training:" in p.text or "Epoch" in p.text for p in at.sidebar.get("progress"))

    ui.open_page(at, "train")
    at.button(key=ui.key(at, "train", "stop")).click().run()
    ui.wait_for_training(at)

    run = state.trained_run(at.session_state)
    assert run.metadata["stopped_early"]
    assert run.metadata["epochs_completed"] < 100
    assert any("stopped" in warning.value for warning in at.warning)
    assert run.evaluation.test.y_score.shape == (len(run.evaluation.test.y_true), 3), "the partial model is evaluated"
    ui.open_page(at, "evaluate")
    assert not at.exception, "the partial model can be evaluated"
    assert at.dataframe, "the partial model can be evaluated"


def test_the_server_wide_limit_gives_a_clear_message(ui, monkeypatch):
    monkeypatch.setattr(jobs, "LIMITER", jobs.JobLimiter(0))
    at = ui.new_app()
    ui.apply_data_settings(at)
    ui.start_training(at)

    assert not at.exception
    assert any("limit" in error.value for error in at.error)
    assert state.job(at.session_state) is None


def test_a_training_that_would_not_fit_in_the_memory_budget_is_refused_with_the_numbers(ui, monkeypatch):
    from mlcore import memory

    budget = memory.process_rss() + 50 * memory.MB  # less than any training needs
    monkeypatch.setattr(jobs, "GUARD", memory.MemoryGuard(budget=budget))
    at = ui.new_app()
    ui.apply_data_settings(at)
    ui.start_training(at, batch_size=32)

    assert not at.exception
    needed = memory.training_bytes("seed", 64, 3, 32) // memory.MB
    assert any(
        f"Training the seed network on 64 px images in batches of 32 would need about {needed:,} MB" in error.value
        and f"of its {budget // memory.MB:,} MB budget" in error.value
        for error in at.error
    ), [error.value for error in at.error]
    assert state.job(at.session_state) is None
    assert jobs.LIMITER.active == 0, "the refused job gives its training slot back"
    monkeypatch.setattr(jobs, "GUARD", memory.MemoryGuard(budget=2**62))
    ui.start_training(at, epochs=1, batch_size=32)
    ui.wait_for_training(at)
    assert state.trained_run(at.session_state) is not None, "with room again, the same settings train"


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


def test_with_augmentation_on_the_page_shows_training_images_as_the_network_sees_them(trained_app, ui):
    at = ui.open_page(trained_app, "train")
    config = state.train_config(at.session_state)
    assert config.augmentation
    expander = next(e for e in at.expander if e.label.startswith("Augmentation"))
    rows = [image for image in expander.image]
    assert len(rows) == 4
    assert all(len(row.value) == 4 for row in rows), "each image and three augmented draws"
    originals = datasets.load_splits(state.data_config(at.session_state)).train.images[:4]
    views = model.augmented_examples(originals, copies=3, seed=state.data_config(at.session_state).seed)
    assert views.shape == (4, 3, *originals.shape[1:])
    assert all(np.abs(views[i].astype(int) - originals[i]).mean() > 1 for i in range(4)), "augmented, not copies"
