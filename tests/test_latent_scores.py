"""Scoring latents against labels: MIG, DCI and SAP against hand computations, synthetic
stores that are (and are not) disentangled, linear probes, bad inputs."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from vaekit import disentanglement as dis
from vaekit.errors import DataError, UsageError
from vaekit.latent_scores import format_scores, score_latents, score_tables
from vaekit.probe import holdout_split, linear_probe
from vaekit.store import LatentStoreWriter

# -- the arithmetic, by hand ------------------------------------------------------------------

# 8 rows, 2 binary factors, 3 latents; with 2 bins each latent's bin is its 0/1 value
V1 = np.array([0, 0, 0, 0, 1, 1, 1, 1])
V2 = np.array([0, 1, 0, 1, 0, 1, 0, 1])
Z = np.array(
    [
        [0, 0, 0, 0, 1, 1, 1, 1],  # latent 0: v1 exactly
        [0, 1, 0, 1, 0, 1, 1, 1],  # latent 1: v2, but row 6 is wrong
        [0, 0, 0, 1, 1, 1, 1, 1],  # latent 2: v1, but row 3 is wrong
    ],
    dtype=float,
).T


def mi_by_hand(a, b) -> float:
    """Σ p(x, y) log(p(x, y) / (p(x) p(y))) from counts, in nats."""
    n = len(a)
    joint, pa, pb = Counter(zip(a, b, strict=True)), Counter(a), Counter(b)
    return sum(c / n * math.log((c / n) / (pa[x] / n * pb[y] / n)) for (x, y), c in joint.items())


def test_discretize_uses_equal_width_bins_over_each_latents_range():
    z = np.array([[0.0, 5.0], [0.24, 5.0], [0.26, 5.0], [0.99, 5.0], [1.0, 5.0]])
    codes = dis.discretize(z, bins=4)
    assert codes[:, 0].tolist() == [0, 0, 1, 3, 3]  # width 0.25; the maximum joins the top bin
    assert codes[:, 1].tolist() == [0] * 5  # a constant latent: one bin
    np.testing.assert_array_equal(dis.discretize(Z, bins=2), Z.astype(int))


def test_mutual_information_and_mig_match_a_hand_computation():
    codes = dis.discretize(Z, bins=2)
    mi1, mi2 = dis.mutual_information(codes, V1), dis.mutual_information(codes, V2)
    # latent 0 is v1: I = H(v1) = log 2. Latent 2 against v1: joint counts (0,0)=3, (1,0)=1,
    # (1,1)=4, so I = 3/8 log 2 + 1/8 log(2/5) + 1/2 log(8/5)
    i_2_1 = 3 / 8 * math.log(2) + 1 / 8 * math.log(2 / 5) + 1 / 2 * math.log(8 / 5)
    assert mi1[0] == pytest.approx(math.log(2))
    assert mi1[2] == pytest.approx(i_2_1)
    for j in range(3):
        assert mi1[j] == pytest.approx(mi_by_hand(codes[:, j], V1))
        assert mi2[j] == pytest.approx(mi_by_hand(codes[:, j], V2))
    assert dis.entropy(V1) == pytest.approx(math.log(2))
    mig1 = dis.mig_gap(mi1, dis.entropy(V1))
    assert mig1 == pytest.approx((math.log(2) - i_2_1) / math.log(2))
    top, second = sorted((mi_by_hand(codes[:, j], V2) for j in range(3)), reverse=True)[:2]
    assert dis.mig_gap(mi2, dis.entropy(V2)) == pytest.approx((top - second) / math.log(2))


def test_dci_matches_a_hand_computation():
    r = np.array([[0.8, 0.2], [0.1, 0.3], [0.1, 0.5]])

    def h(p, base):  # entropy of p normalised, in base
        p = np.asarray(p) / np.sum(p)
        return -sum(x * math.log(x, base) for x in p if x > 0)

    per_latent = [1 - h(r[j], 2) for j in range(3)]
    weights = r.sum(1) / r.sum()  # 1.0, 0.4, 0.6 of 2.0
    completeness = [1 - h(r[:, k], 3) for k in range(2)]
    found = dis.dci_scores(r)
    assert found["per_latent"] == pytest.approx(per_latent)
    assert found["disentanglement"] == pytest.approx(float(np.dot(weights, per_latent)))
    assert found["per_factor"] == pytest.approx(completeness)
    assert found["completeness"] == pytest.approx(np.mean(completeness))
    # one latent per factor, a third that matters for nothing: perfect
    ideal = dis.dci_scores(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    assert ideal["disentanglement"] == pytest.approx(1.0)
    assert ideal["completeness"] == pytest.approx(1.0)
    # every latent shared equally by both factors: no disentanglement
    shared = dis.dci_scores(np.array([[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]]))
    assert shared["disentanglement"] == pytest.approx(0.0)
    assert shared["completeness"] == pytest.approx(1 - math.log(2) / math.log(3))
    assert dis.dci_scores(np.array([[0.7], [0.3]]))["disentanglement"] is None


def test_sap_matches_a_hand_computation():
    z_train = np.array([[0, 3, 1], [1, 2, 1], [2, 1, 1], [3, 0, 1]], dtype=float)
    v_train = np.array([0, 0, 1, 1])
    z_test = np.array([[0.5, 0, 1], [2.5, 0, 1], [1.0, 3, 1], [1.8, 3, 1]], dtype=float)
    v_test = np.array([0, 1, 1, 1])
    # latent 0: 1 above 1.5; latent 1: 1 at or below 1.5; latent 2 is constant
    assert dis.best_threshold(z_train[:, 0], v_train) == (1.5, True)
    assert dis.best_threshold(z_train[:, 1], v_train) == (1.5, False)
    scores = dis.sap_column(z_train, v_train, z_test, v_test)
    # latent 0 predicts 0,1,0,1: recall of 0 is 1/1, of 1 is 2/3; balanced 5/6 -> 2/3
    # latent 1 predicts 1,1,0,0: recalls 0 and 1/3; balanced 1/6 -> -2/3
    # latent 2 predicts one value everywhere: balanced 1/2 -> 0
    assert scores == pytest.approx([2 / 3, -2 / 3, 0.0])
    assert dis.sap_gap(scores) == pytest.approx(2 / 3)


def test_sap_of_a_many_valued_factor_uses_interval_classifiers():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 4, size=400)
    z = np.stack([v + rng.normal(0, 0.05, 400), rng.normal(size=400)], 1)
    scores = dis.sap_column(z[:300], v[:300], z[300:], v[300:])
    assert scores[0] == pytest.approx(1.0) and abs(scores[1]) < 0.2


# -- synthetic stores --------------------------------------------------------------------------


def write_store(path, mu, labels=None, attributes=None, attribute_names=None, class_names=None):
    n, d = mu.shape
    with LatentStoreWriter(
        path,
        n,
        d,
        class_names=class_names,
        labels=labels is not None,
        attribute_names=attribute_names,
        split_names=["train", "val", "test"],
    ) as writer:
        writer.append(
            mu.astype(np.float32),
            np.zeros_like(mu, dtype=np.float32),
            labels=labels,
            attributes=attributes,
            ids=np.array([str(i) for i in range(n)]),
            split=(np.arange(n) % 5 == 0).astype(np.uint8) * 2,  # every fifth row: test
        )
        writer.finish()
    return path


def factor_store(path, mu_of, n=1500, k=4, seed=0):
    """k independent binary factors (p = 1/2); latent j = factor j + N(0, 0.1²) noise, then
    ``mu_of`` applied."""
    rng = np.random.default_rng(seed)
    factors = rng.random((n, k)) < 0.5
    mu = mu_of(factors.astype(float) + rng.normal(0, 0.1, size=(n, k)))
    names = [f"f{i}" for i in range(k)]
    return write_store(path, mu, attributes=factors, attribute_names=names)


#: An orthogonal matrix that puts every factor into every latent equally (a scaled Hadamard).
MIXING = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2


def test_a_disentangled_store_scores_near_one_and_rotations_of_it_lower(tmp_path):
    aligned = score_latents(factor_store(tmp_path / "aligned.h5", lambda z: z))
    assert aligned.mig > 0.95
    assert aligned.dci_disentanglement > 0.95 and aligned.dci_completeness > 0.95
    assert aligned.sap > 0.85  # the other latents' thresholds score a little above chance
    assert aligned.dci_informativeness > 0.99
    assert [f.mig_latent for f in aligned.factors] == [0, 1, 2, 3]
    assert [f.sap_latent for f in aligned.factors] == [0, 1, 2, 3]
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))
    rotated = score_latents(factor_store(tmp_path / "rotated.h5", lambda z: z @ q))
    mixed = score_latents(factor_store(tmp_path / "mixed.h5", lambda z: z @ MIXING))
    assert rotated.mig < aligned.mig - 0.2
    assert rotated.dci_disentanglement < aligned.dci_disentanglement - 0.05
    assert rotated.sap < aligned.sap - 0.2
    assert mixed.mig < 0.1 and mixed.sap < 0.15
    assert mixed.dci_disentanglement < 0.5 and mixed.dci_completeness < 0.5
    # the information is all still there: a linear probe reads every factor off each
    for f in (*aligned.factors, *rotated.factors, *mixed.factors):
        assert f.probe_accuracy > 0.99 and 0.4 < f.majority_baseline < 0.6


def test_probe_reads_a_label_that_latent_zero_equals(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.choice(3, size=600, p=[0.6, 0.3, 0.1])
    mu = np.column_stack([labels, rng.normal(size=(600, 3))])
    path = write_store(tmp_path / "l.h5", mu, labels=labels, class_names=["x", "y", "z"])
    result = score_latents(path)
    (factor,) = result.factors
    assert factor.name == "class" and factor.values == 3 and factor.rows == 600
    assert factor.probe_accuracy == pytest.approx(1.0)
    assert factor.majority_baseline == pytest.approx(0.6, abs=0.02)  # stratified: ~60% "x"
    assert factor.stratified is True
    assert factor.mig_latent == 0 and factor.sap_latent == 0
    assert result.dci_disentanglement is None  # one factor
    assert any("two factors" in note for note in result.notes)


def test_linear_probe_and_baseline_on_arrays():
    rng = np.random.default_rng(3)
    v = (rng.random(500) < 0.7).astype(int)
    z = np.column_stack([rng.normal(size=500), rng.normal(size=500)])
    holdout = holdout_split(v, 0.2, seed=0)
    assert len(holdout.test) == 100 and holdout.stratified
    assert np.mean(v[holdout.test]) == pytest.approx(np.mean(v), abs=0.01)
    noise = linear_probe(z[holdout.train], v[holdout.train], z[holdout.test], v[holdout.test])
    assert noise.baseline == pytest.approx(np.mean(v[holdout.test] == 1))
    assert abs(noise.accuracy - noise.baseline) < 0.08  # nothing to read: about the baseline


def test_unlabelled_rows_are_left_out_of_the_class_and_split_and_rows_are_kept(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=400)
    labels[:100] = -1
    mu = np.column_stack([labels, rng.normal(size=400)])
    path = write_store(tmp_path / "u.h5", mu, labels=labels, class_names=["p", "q"])
    result = score_latents(path, split="test", max_rows=50, seed=1)
    assert result.rows == 50 and result.store_rows == 400 and result.split == "test"
    test_rows = np.flatnonzero(np.arange(400) % 5 == 0)  # the store's test split
    subset = np.random.default_rng(1).choice(test_rows, size=50, replace=False)
    assert result.factors[0].rows == int((labels[subset] >= 0).sum()) < 50
    whole = score_latents(path)
    assert whole.factors[0].rows == 300
    assert whole.settings["max_rows"] == 5000 and whole.settings["mig_bins"] == 20
    json.dumps(whole.to_dict())  # --json prints it
    text = format_scores(whole)
    assert "MIG" in text and "class" in text and "probe acc." in text
    (summary, per_factor) = score_tables(whole)
    assert per_factor[2][0][0] == "class"


def test_bad_inputs_are_one_line_errors(tmp_path):
    rng = np.random.default_rng(5)
    plain = write_store(tmp_path / "plain.h5", rng.normal(size=(40, 2)))
    with pytest.raises(DataError, match="no class labels or attributes"):
        score_latents(plain)
    same = write_store(
        tmp_path / "same.h5",
        rng.normal(size=(40, 2)),
        attributes=np.ones((40, 1), bool),
        attribute_names=["always"],
    )
    with pytest.raises(DataError, match="always: one value only"):
        score_latents(same)
    with pytest.raises(UsageError, match="unknown split 'dev'"):
        score_latents(same, split="dev")
    with pytest.raises(UsageError, match="--max-rows"):
        score_latents(same, max_rows=3)
    with pytest.raises(UsageError, match="--test-fraction"):
        score_latents(same, test_fraction=0.9)


def test_a_value_with_one_row_cannot_be_stratified_so_the_split_is_plain_random():
    v = np.array([0] * 30 + [1] * 19 + [2])
    holdout = holdout_split(v, 0.2, seed=0)
    assert not holdout.stratified and len(holdout.test) == 10
    assert sorted([*holdout.train, *holdout.test]) == list(range(50))
    assert holdout_split(v[:49], 0.2, seed=0).stratified
