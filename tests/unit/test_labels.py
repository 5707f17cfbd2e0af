import numpy as np
import pytest

from mlcore.config import LABELS
from mlcore.labels import label_names, make_targets, uniform_per_key


def _targets(n=4000, p=0.3, seed=7, keys=None):
    class_index = np.arange(n) % 2
    keys = keys or [f"img{i}" for i in range(n)]
    return make_targets(class_index, ("cats", "dogs"), keys, indoor_probability=p, seed=seed)


def test_dog_and_cat_columns_follow_the_class():
    targets = make_targets(np.array([0, 1, 1]), ("cats", "dogs"), ["a", "b", "c"], indoor_probability=0.0, seed=0)
    assert targets.dtype == np.float32
    np.testing.assert_array_equal(targets, [[0, 1, 0], [1, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_indoor_rate_matches_probability(p):
    rate = _targets(p=p)[:, 2].mean()
    assert abs(rate - p) < 0.03  # 4,000 draws: 3 standard errors at p=0.5 is 0.024


def test_same_seed_same_labels_whatever_the_order():
    keys = [f"img{i}" for i in range(200)]
    first = make_targets(np.zeros(200, int), ("cats", "dogs"), keys, indoor_probability=0.5, seed=3)
    order = np.random.default_rng(0).permutation(200)
    shuffled = make_targets(
        np.zeros(200, int), ("cats", "dogs"), [keys[i] for i in order], indoor_probability=0.5, seed=3
    )
    np.testing.assert_array_equal(first[order], shuffled)
    other_seed = make_targets(np.zeros(200, int), ("cats", "dogs"), keys, indoor_probability=0.5, seed=4)
    assert (first[:, 2] != other_seed[:, 2]).sum() > 50


def test_raising_probability_only_adds_indoor_tags():
    low, high = _targets(p=0.2)[:, 2], _targets(p=0.6)[:, 2]
    assert np.all(high >= low)
    assert high.sum() > low.sum()


def test_uniform_per_key_is_in_unit_interval():
    values = uniform_per_key([str(i) for i in range(1000)], seed=1)
    assert values.min() >= 0
    assert values.max() < 1
    assert 0.45 < values.mean() < 0.55


def test_label_names_for_other_classes_and_bad_probability():
    assert label_names(("cats", "dogs")) == LABELS
    assert label_names(("Dog", "cat")) == LABELS
    assert label_names(("birds", "fish")) == ("birds", "fish", "indoor")
    with pytest.raises(ValueError, match="indoor"):
        label_names(("indoor", "outdoor"))
    with pytest.raises(ValueError, match="1.5"):
        make_targets(np.array([0]), ("cats", "dogs"), ["a"], indoor_probability=1.5, seed=0)
