"""Command line: ``mlcore train ...`` and ``mlcore predict BUNDLE IMAGE...`` (or ``python -m mlcore ...``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mlcore import config as cfg
from mlcore import runtime

NOTEBOOK_PROTOCOL = {"epochs": 5, "batch_size": 32, "indoor_probability": 0.5, "threshold": 0.5}


def _parser() -> argparse.ArgumentParser:
    # Installed, the command is `mlcore`; from a checkout, `python -m mlcore`.
    prog = "mlcore" if Path(sys.argv[0]).name == "mlcore" else "python -m mlcore"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a network and print its evaluation")
    train.add_argument(
        "--source",
        choices=cfg.SOURCES,
        default="real",
        help="real cats_and_dogs_filtered, a local folder, a zip, or the generated demo set",
    )
    train.add_argument("--data-dir", help=f"folder containing {cfg.DATASET_NAME}/ (default: ${cfg.DATA_DIR_ENV})")
    train.add_argument(
        "--folder",
        help="with --source folder: a folder with one subfolder per class, or a folder of images with labels.csv",
    )
    train.add_argument(
        "--zip", dest="archive", help="with --source zip: a zip of class folders, or of images with labels.csv"
    )
    train.add_argument(
        "--add-indoor",
        action="store_true",
        help="labels.csv data: also add the random 'indoor' tag (class folders always get it)",
    )
    train.add_argument(
        "--keep-rare-labels",
        action="store_true",
        help="labels.csv data: keep labels seen on fewer than 10 images (dropped by default)",
    )
    train.add_argument("--demo-images", type=int, default=cfg.DataConfig.demo_images, help="size of the demo set")
    train.add_argument(
        "--protocol",
        choices=("standard", "notebook"),
        default="standard",
        help="standard: train on train/, test on the official validation/ split; "
        "notebook: the reference notebook's 320-image protocol exactly",
    )
    train.add_argument("--architecture", choices=cfg.ARCHITECTURES, default="seed")
    train.add_argument("--epochs", type=int, default=cfg.TrainConfig.epochs)
    train.add_argument("--batch-size", type=int, default=cfg.TrainConfig.batch_size)
    train.add_argument("--learning-rate", type=float, default=cfg.TrainConfig.learning_rate)
    train.add_argument("--no-augmentation", action="store_true", help="compact network without augmentation")
    train.add_argument("--n-images", type=int, help="training pool size (stratified subset); default all")
    train.add_argument("--image-size", type=int, default=cfg.DataConfig.image_size)
    train.add_argument("--indoor-probability", type=float, default=cfg.DataConfig.indoor_probability)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument(
        "--threshold", type=float, default=0.5, help="the decision threshold of every label (default 0.5)"
    )
    train.add_argument(
        "--choose-thresholds",
        metavar="RULE",
        type=_threshold_rule,
        help="choose each label's threshold on the validation split, then report the test split: "
        "'f1' (F1-best), 'precision:0.9' (the lowest threshold whose precision reaches 0.9) "
        "or 'recall:0.9' (the highest whose recall reaches 0.9); a label that cannot reach "
        "the target keeps --threshold",
    )
    train.add_argument(
        "--strategy",
        choices=runtime.STRATEGIES,
        default="default",
        help="tf.distribute strategy: one device (default), every local GPU (mirrored), or every worker "
        "in TF_CONFIG (multi-worker; start one process per worker). --batch-size is the global batch.",
    )
    train.add_argument(
        "--no-bfloat16",
        action="store_true",
        help=f"train in float32 even where the CPU has AVX512-BF16 or AMX (also: {runtime.BFLOAT16_ENV}=off)",
    )
    train.add_argument("--output", default="runs/latest.zip", help="where to save the run bundle")

    predict = commands.add_parser("predict", help="predict labels for images with a saved run bundle")
    predict.add_argument("bundle")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--threshold", type=float, help="override the bundle's thresholds")
    return parser


def _threshold_rule(text: str) -> tuple[str, float | None]:
    """``f1``, ``precision:T`` or ``recall:T`` as ``(rule, target)``."""
    rule, _, target = text.partition(":")
    try:
        if rule == "f1" and not target:
            return "f1", None
        if rule in ("precision", "recall") and 0.0 < float(target) <= 1.0:
            return rule, float(target)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected f1, precision:T or recall:T with 0 < T <= 1, got {text!r}")


class ProgressBar:
    """A one-line terminal progress bar fed by training progress reports."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width = stream, width

    def __call__(self, progress) -> None:
        interactive = getattr(self.stream, "isatty", lambda: False)()
        if progress.kind == "batch" and not interactive:
            return  # in logs and pipes, one line per epoch is enough
        done = progress.batch / progress.batches
        filled = int(self.width * done)
        shown = " ".join(
            f"{key}={progress.logs[key]:.4f}"
            for key in ("loss", "binary_accuracy", "auc", "val_loss", "val_auc")
            if key in progress.logs
        )
        line = (
            f"\rEpoch {progress.epoch}/{progress.epochs} [{'=' * filled}{'.' * (self.width - filled)}] "
            f"{progress.batch}/{progress.batches} {progress.elapsed:.0f}s {shown}"
        )
        self.stream.write((line if interactive else line.lstrip("\r")) + ("\n" if progress.kind == "epoch" else ""))
        self.stream.flush()


def _configs(args) -> tuple[cfg.DataConfig, cfg.TrainConfig, float]:
    values = vars(args).copy()
    if args.protocol == "notebook":
        values.update(NOTEBOOK_PROTOCOL)
    data_config = cfg.DataConfig(
        source=args.source,
        data_dir=args.data_dir,
        folder=args.folder,
        archive=args.archive,
        image_size=args.image_size,
        n_images=args.n_images,
        indoor_probability=values["indoor_probability"],
        seed=args.seed,
        demo_images=args.demo_images,
        add_indoor=args.add_indoor,
        drop_rare_labels=not args.keep_rare_labels,
    )
    train_config = cfg.TrainConfig(
        architecture=args.architecture,
        epochs=values["epochs"],
        batch_size=values["batch_size"],
        learning_rate=args.learning_rate,
        augmentation=not args.no_augmentation,
        seed=args.seed,
    )
    return data_config, train_config, values["threshold"]


def _train(args) -> int:
    from mlcore import datasets, metrics, predict, store, train

    strategy = runtime.make_strategy(args.strategy)  # before anything else runs TensorFlow
    chief = runtime.is_chief(strategy)
    data_config, train_config, threshold = _configs(args)
    started = time.perf_counter()
    splits = datasets.notebook_splits(data_config) if args.protocol == "notebook" else datasets.load_splits(data_config)
    kind = "SYNTHETIC demo set" if splits.synthetic else splits.origin
    print(
        f"Data: {kind}; split sizes {splits.sizes()}; labels {list(splits.label_names)}; "
        f"loaded in {time.perf_counter() - started:.1f}s"
    )
    if splits.skipped_files:
        print(f"Skipped {len(splits.skipped_files)} unreadable file(s): {', '.join(splits.skipped_files[:5])}")
    for finding in splits.findings:
        print(finding.sentence())
    result = train.train_model(
        (splits.train.images, splits.train.targets),
        (splits.validation.images, splits.validation.targets),
        train_config,
        splits.label_names,
        on_progress=ProgressBar(),
        bfloat16=False if args.no_bfloat16 else None,
        strategy=None if args.strategy == "default" else strategy,
    )
    if result.stopped:
        print("Training stopped early.")
    print(
        f"Trained in {result.precision} on {strategy.num_replicas_in_sync} replica(s); "
        f"weights digest {train.weights_digest(result.model)}"
    )
    labels = splits.label_names
    thresholds, origins = _thresholds(args, result.model, splits, threshold)
    y_true, y_score = splits.test.targets, predict.predict_proba(result.model, splits.test.images)
    report = metrics.classification_report_frame(y_true, y_score, threshold=thresholds, labels=labels)
    shown = threshold if args.choose_thresholds is None else ", ".join(f"{k} {v:.2f}" for k, v in thresholds.items())
    print(f"\nClassification report on the test split ({len(y_true)} images, threshold {shown}):")
    print(report.to_string(float_format=lambda v: f"{v:.2f}"))
    for label, matrix in zip(
        labels, metrics.confusion_matrices(y_true, y_score, threshold=thresholds, labels=labels), strict=True
    ):
        print(f"\nConfusion matrix for {label} ([[TN FP] [FN TP]]):\n{matrix}")
    ranking = metrics.ranking_scores(y_true, y_score, labels=labels)
    summary = metrics.summary_scores(y_true, y_score, threshold=thresholds, labels=labels)
    print("\nPer-label ROC-AUC: " + ", ".join(f"{k}={v:.3f}" for k, v in ranking["roc_auc"].items()))
    print("Summary: " + ", ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    test_metrics = metrics.evaluation_summary(y_true, y_score, threshold=thresholds, labels=labels, ranking=ranking)
    metadata = store.run_metadata(
        data_config,
        train_config,
        splits,
        result,
        thresholds=thresholds,
        threshold_origin=origins,
        test_metrics=test_metrics,
    )
    if not chief:
        print("\nA worker, not the chief: the chief saves the run bundle.")
        return 0
    path = store.save_bundle(args.output, result.model, metadata)
    print(f"\nSaved run bundle to {path}")
    return 0


def _thresholds(args, model, splits, threshold: float) -> tuple[dict[str, float], dict[str, dict]]:
    """Every label at ``threshold``, or chosen by ``--choose-thresholds`` on the validation split."""
    from mlcore import metrics, predict

    labels = splits.label_names
    thresholds = {label: float(threshold) for label in labels}
    origins = {label: metrics.threshold_origin("fixed") for label in labels}
    if args.choose_thresholds is None:
        return thresholds, origins
    if len(splits.validation) == 0:
        raise ValueError("--choose-thresholds needs a validation split, and this data has none")
    rule, target = args.choose_thresholds
    y_score = predict.predict_proba(model, splits.validation.images)
    chosen = metrics.choose_thresholds(splits.validation.targets, y_score, rule=rule, target=target, labels=labels)
    origin = metrics.threshold_origin(rule, split="validation", target=target)
    for label, value in chosen.items():
        if value is None:
            print(f"No threshold reaches {rule} {target} for {label} on the validation split: it keeps {threshold}.")
        else:
            thresholds[label], origins[label] = value, origin
    print(
        f"Thresholds, {metrics.describe_origin(origin)}: "
        + ", ".join(f"{label} {value:.2f}" for label, value in thresholds.items())
    )
    return thresholds, origins


def _predict(args) -> int:
    import numpy as np

    from mlcore import metrics, predict, store

    bundle = store.load_bundle(args.bundle)
    thresholds = metrics.threshold_vector(
        args.threshold if args.threshold is not None else bundle.thresholds or 0.5, bundle.label_names
    )
    sources = [(name, Path(name)) for name in args.images]
    failures = 0
    results = predict.predict_files(
        bundle.model,
        sources,
        label_names=bundle.label_names,
        thresholds=np.asarray(thresholds),
        image_size=bundle.image_size,
    )
    for (name, _), result in zip(sources, results, strict=True):
        if isinstance(result, predict.ImageError):
            failures += 1
            print(f"{name}: error: {result}", file=sys.stderr)
            continue
        probabilities = " ".join(f"{label}={p:.3f}" for label, p in result.probabilities.items())
        print(f"{name}: {probabilities} -> {', '.join(result.labels) or 'none of the labels'}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    from mlcore.datasets import DatasetUnavailable
    from mlcore.store import BundleError

    try:
        return _train(args) if args.command == "train" else _predict(args)
    except (DatasetUnavailable, BundleError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
