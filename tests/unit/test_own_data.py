"""People's own images: zips of class folders, labels.csv with real multi-label annotations,
and the same as a local folder and on the command line."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlcore import cli, datasets, labels, metrics, predict, store, train
from mlcore.config import DataConfig, TrainConfig
from tests import zips

pytestmark = pytest.mark.timeout(600)


def test_labels_csv_is_read_with_both_separators_empty_rows_and_strays():
    data = (
        "\ufefffile,labels\n"
        "a.jpg,cat;dog\n"
        "b.jpg,dog | tree\n"
        "c.jpg,\n"
        "./d.jpg,tree\n"
        "gone.jpg,cat\n"
        '"e.jpg","cat;tree"\n'
        "a.jpg,sky\n"
        "f.jpg,cat,extra\n"
        "\n"
    ).encode()
    found = labels.read_annotations(data, ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "z.jpg"])
    assert found.files == ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg")
    assert found.label_names == ("cat", "dog", "sky", "tree")
    np.testing.assert_array_equal(
        found.tags, [[1, 1, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 1]]
    )  # a.jpg's second row merged in; c.jpg has no labels at all
    assert found.missing_files == ("gone.jpg",)
    assert found.unlisted_files == ("f.jpg", "z.jpg")  # f.jpg's only row has a third column
    assert found.bad_rows == (9,)
    assert found.duplicate_rows == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"file,labels\n", "no rows after its header"),
        ("file,labels\nx.jpg,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"file,labels\nother.jpg,cat\n", "No row of labels.csv names an image"),
    ],
)
def test_an_unusable_labels_csv_says_why(data, message):
    with pytest.raises(labels.AnnotationError, match=message):
        labels.read_annotations(data, ["x.jpg"])


def test_stratification_groups_follow_each_images_rarest_label():
    tags = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0], [1, 1, 0]])
    # Counts: 4, 2, 1. Rarest present: 0, 1, 2, none (3), 1.
    assert labels.stratification_groups(tags).tolist() == [0, 1, 2, 3, 1]


def test_a_macos_zip_is_looked_through_its_wrapping_folder(tmp_path):
    image_set = datasets.load_archive(zips.macos_zip(tmp_path / "pets.zip", per_class=12), 32)
    assert image_set.class_names == ("cats", "dogs")
    assert np.bincount(image_set.class_index).tolist() == [12, 12]
    assert all(key.startswith(("cats/", "dogs/")) for key in image_set.keys)
    (finding,) = image_set.findings
    assert finding.what.startswith("files were skipped: hidden or system file")
    assert len(finding.names) == 5  # three __MACOSX forks and two .DS_Store


def test_a_zip_decodes_to_the_same_pixels_as_the_folder_it_was_made_from(tmp_path):
    members = zips.class_members({"cats": 10, "dogs": 10})
    for name, data in members.items():
        (tmp_path / "folder" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / name).write_bytes(data)
    from_zip = datasets.load_archive(zips.write_zip(tmp_path / "pets.zip", members), 32)
    from_folder = datasets.load_folder(tmp_path / "folder", 32)
    assert from_zip.keys == from_folder.keys
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    cached = datasets.load_archive(tmp_path / "pets.zip", 32)  # the second load reads the cache
    np.testing.assert_array_equal(cached.images, from_zip.images)


def test_a_three_class_zip_gets_a_label_per_class_and_the_random_tag(tmp_path):
    members = zips.class_members({"birds": 12, "cats": 14, "dogs": 16})
    archive = zips.write_zip(tmp_path / "three.zip", members)
    splits = datasets.load_splits(DataConfig(source="zip", archive=str(archive), image_size=32))
    assert splits.label_names == ("birds", "cat", "dog", "indoor")
    every = np.concatenate([splits.train.targets, splits.validation.targets, splits.test.targets])
    assert every[:, :3].sum(axis=0).tolist() == [12, 14, 16]
    assert (every[:, :3].sum(axis=1) == 1).all()


def test_rare_labels_are_reported_and_dropped_unless_kept(tmp_path):
    members, _ = zips.multilabel_members(60)
    rows = members["labels.csv"].decode().splitlines()
    rows[1] += ";unicorn"  # seen once
    members["labels.csv"] = "\n".join(rows).encode()
    archive = str(zips.write_zip(tmp_path / "rare.zip", members))
    dropped = datasets.load_splits(DataConfig(source="zip", archive=archive, image_size=32))
    assert "unicorn" not in dropped.label_names
    assert any("unicorn (1)" in finding.names and "dropped" in finding.what for finding in dropped.findings)
    kept = datasets.load_splits(DataConfig(source="zip", archive=archive, image_size=32, drop_rare_labels=False))
    assert kept.label_names == ("circle", "cross", "square", "stripe", "triangle", "unicorn")


def test_a_folder_with_labels_csv_counts_missing_rows_and_unlisted_files(tmp_path):
    members, tags = zips.multilabel_members(60)
    rows = members["labels.csv"].decode().splitlines()
    members["labels.csv"] = "\n".join([*rows[:-2], "not_here.jpg,circle"]).encode()  # two images lose their row
    for name, data in members.items():
        (tmp_path / name).write_bytes(data)
    splits = datasets.load_splits(DataConfig(source="folder", folder=str(tmp_path), image_size=32))
    assert sum(splits.sizes().values()) == 58
    shown = {finding.what: finding.names for finding in splits.findings}
    assert shown["rows of labels.csv name a file that is not there"] == ("not_here.jpg",)
    assert shown["images have no row in labels.csv and were left out"] == ("img_0058.jpg", "img_0059.jpg")
    assert splits.annotated


def test_five_real_labels_train_end_to_end_and_are_judged_per_label(tmp_path):
    """Each label is a shape drawn on the picture: the network must learn all five, and every
    figure of the report must equal sklearn's on the same probabilities."""
    archive, _ = zips.multilabel_zip(tmp_path / "shapes.zip", count=400)
    config = DataConfig(source="zip", archive=str(archive), image_size=48, add_indoor=True)
    splits = datasets.load_splits(config)
    assert splits.label_names == ("circle", "cross", "square", "stripe", "triangle", "indoor")
    result = train.train_model(
        (splits.train.images, splits.train.targets),
        (splits.validation.images, splits.validation.targets),
        TrainConfig(epochs=12, batch_size=16, learning_rate=2e-3),
        splits.label_names,
    )
    y_true, y_score = splits.test.targets, predict.predict_proba(result.model, splits.test.images)
    ranking = metrics.ranking_scores(y_true, y_score, labels=splits.label_names)
    for index, label in enumerate(splits.label_names):
        assert ranking.loc[label, "roc_auc"] == pytest.approx(roc_auc_score(y_true[:, index], y_score[:, index]))
    shapes = ranking.loc[list(zips.SHAPES), "roc_auc"]
    assert (shapes > 0.75).all(), shapes  # learned from the pictures
    assert 0.25 < ranking.loc["indoor", "roc_auc"] < 0.75  # the random control stays near chance
    matrices = metrics.confusion_matrices(y_true, y_score, threshold=0.5, labels=splits.label_names)
    for index, matrix in enumerate(matrices):
        predicted = y_score[:, index] >= 0.5
        positive = y_true[:, index] == 1
        assert matrix.tolist() == [
            [int((~predicted & ~positive).sum()), int((predicted & ~positive).sum())],
            [int((~predicted & positive).sum()), int((predicted & positive).sum())],
        ]


def test_the_command_line_trains_on_a_labels_csv_zip_and_its_bundle_keeps_the_names(tmp_path, capsys):
    archive, _ = zips.multilabel_zip(tmp_path / "shapes.zip", count=100)
    bundle = tmp_path / "run.zip"
    code = cli.main(
        ["train", "--source", "zip", "--zip", str(archive), "--image-size", "32", "--epochs", "1",
         "--output", str(bundle)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "labels ['circle', 'cross', 'square', 'stripe', 'triangle']" in printed
    loaded = store.load_bundle(bundle)
    assert loaded.label_names == ("circle", "cross", "square", "stripe", "triangle")
    assert loaded.metadata["class_names"] == ["circle", "cross", "square", "stripe", "triangle"]
    assert loaded.metadata["data_config"]["source"] == "zip"
    assert loaded.model.output_shape[-1] == 5


def test_many_small_groups_still_give_each_split_its_full_share():
    """Rounding each group on its own gave 3 validation images of 48 for the shapes zip."""
    groups = np.repeat(np.arange(16), 3)  # 16 groups of 3: 0.3 each would round to 0
    rest, part = datasets.stratified_split_indices(groups, 0.1, seed=0)
    assert len(part) == 5  # round(48 * 0.1)
    assert len(rest) == 43
    assert len(set(groups[part])) == 5  # from five different groups


def test_a_small_multi_label_zip_puts_every_label_in_validation_and_test(tmp_path):
    archive, _ = zips.multilabel_zip(tmp_path / "shapes.zip", count=60)
    splits = datasets.load_splits(DataConfig(source="zip", archive=str(archive), image_size=32))
    assert splits.sizes() == {"train": 43, "validation": 5, "test": 12}
    for part in (splits.train, splits.validation, splits.test):
        assert (part.targets.sum(axis=0) > 0).all(), part.targets.sum(axis=0)
    assert not [finding for finding in splits.findings if "have no image" in finding.what]


def test_a_label_absent_from_a_split_is_reported(tmp_path):
    archive, _ = zips.multilabel_zip(tmp_path / "shapes.zip", count=60)
    config = DataConfig(source="zip", archive=str(archive), image_size=32, n_images=8)
    splits = datasets.load_splits(config)
    absent = {finding.what: finding.names for finding in splits.findings if "have no image" in finding.what}
    expected = tuple(
        name for name, count in zip(splits.label_names, splits.validation.targets.sum(axis=0), strict=True) if not count
    )
    assert expected  # one validation image cannot show all five labels
    assert absent["labels have no image in the validation split"] == expected


@pytest.mark.parametrize(
    ("label", "reason"),
    [("indoor", "a name the app uses itself"), ("micro avg", "a name the app uses itself"),
     ("File", "a name the app uses itself"), ("**bold**", "not a plain name"), ("<b>x</b>", "not a plain name")],
)  # fmt: skip
def test_labels_that_would_break_a_page_are_refused_by_name(label, reason):
    data = f"file,labels\na.jpg,cat;{label}\n".encode()
    with pytest.raises(labels.AnnotationError, match=reason):
        labels.read_annotations(data, ["a.jpg"])


def test_a_csv_written_by_pandas_or_by_excel_with_semicolons_is_read():
    images = ["a.jpg", "b.jpg"]
    pandas_csv = b",file,labels\n0,a.jpg,cat|dog\n1,b.jpg,\n"  # DataFrame.to_csv() keeps the index
    excel_csv = b"image;tags\na.jpg;cat;dog\nb.jpg;\n"  # ';' separates the columns and the labels
    renamed = b"labels,image\ncat|dog,a.jpg\n,b.jpg\n"  # columns found by their header
    for data in (pandas_csv, excel_csv, renamed):
        found = labels.read_annotations(data, images)
        assert found.files == ("a.jpg", "b.jpg")
        assert found.label_names == ("cat", "dog")
        assert found.tags.tolist() == [[1, 1], [0, 0]]
        assert found.bad_rows == ()


def test_class_folders_with_names_that_cannot_be_labels_are_refused(tmp_path):
    members = zips.class_members({"cats": 10, "dogs": 10})
    members.update({name.replace("dogs/", "d*gs/"): data for name, data in zips.class_members({"dogs": 10}).items()})
    archive = zips.write_zip(tmp_path / "odd.zip", members)
    with pytest.raises(datasets.DatasetUnavailable, match=r"cannot be labels: 'd\*gs' is not a plain name"):
        datasets.load_splits(DataConfig(source="zip", archive=str(archive), image_size=32))


def test_a_zip_whose_images_would_decode_past_the_memory_limit_is_refused(tmp_path, monkeypatch):
    archive = zips.two_class_zip(tmp_path / "pets.zip", per_class=10)
    monkeypatch.setattr(datasets, "MAX_DECODED_BYTES", 19 * 32 * 32 * 3)
    with pytest.raises(datasets.DatasetUnavailable, match="20 images: at 32 px they take 0 MB decoded"):
        datasets.load_archive(archive, 32, use_cache=False)
