import numpy as np
import pytest

from lungscan.metrics import bootstrap_ci, classification_metrics, fit_temperature, reliability, softmax

CLASSES = ["a", "b", "c"]


def _one_hot_probs(pred, k=3, p=0.9):
    probs = np.full((len(pred), k), (1 - p) / (k - 1))
    probs[np.arange(len(pred)), pred] = p
    return probs


def test_metrics_match_a_confusion_computed_by_hand():
    # true a: 4 (3 right, 1 -> b); true b: 3 (2 right, 1 -> c); true c: 3 (all right)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    m = classification_metrics(y, _one_hot_probs(pred), CLASSES)
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [0, 0, 3]]
    assert m["accuracy"] == pytest.approx(8 / 10)
    # precision a=3/3, b=2/3, c=3/4; recall a=3/4, b=2/3, c=3/3
    assert m["per_class"]["a"]["precision"] == pytest.approx(1.0)
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["precision"] == pytest.approx(3 / 4)
    assert m["per_class"]["a"]["recall"] == pytest.approx(3 / 4)
    f1 = [2 * 1 * 0.75 / 1.75, 2 / 3, 2 * 0.75 * 1 / 1.75]
    assert m["per_class"]["a"]["f1"] == pytest.approx(f1[0])
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["per_class"]["b"]["support"] == 3


def test_perfect_ranking_gives_auc_one():
    y = np.array([0, 1, 2, 0, 1, 2])
    m = classification_metrics(y, _one_hot_probs(y), CLASSES)
    assert m["roc_auc"]["macro"] == pytest.approx(1.0) and m["roc_auc"]["micro"] == pytest.approx(1.0)
    assert m["roc_curves"]["micro"]["tpr"][-1] == 1.0


def test_ece_of_known_bins():
    # 10 predictions at confidence 0.9, 6 correct: ECE = |0.6 - 0.9| = 0.3
    y = np.array([0] * 6 + [1] * 4)
    probs = _one_hot_probs(np.zeros(10, int), p=0.9)
    assert reliability(probs, y)["ece"] == pytest.approx(0.3)


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    logits = rng.normal(0, 1, (500, 3))
    logits[np.arange(500), y] += 1.0
    overconfident = logits * 5
    t = fit_temperature(overconfident, y)
    assert 3 < t < 8
    assert reliability(softmax(overconfident, t), y)["ece"] < reliability(softmax(overconfident), y)["ece"]


def test_bootstrap_interval_contains_the_point_estimate():
    y = np.array([0, 1, 2] * 20)
    pred = y.copy()
    pred[:12] = (pred[:12] + 1) % 3
    ci = bootstrap_ci(y, pred, n_resamples=300)
    lo, hi = ci["accuracy_ci"]
    assert lo < 0.8 < hi and hi - lo < 0.3
