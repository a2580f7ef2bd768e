"""Disentanglement scores of a representation against discrete factors (labels): plain
numpy/scikit-learn on arrays; nothing here knows a store.

Latents are ``z`` (N, D) (posterior means); a factor is an (N,) array of integer values
(a binary attribute, a class id). Every function scores one factor at a time, so each
factor may use its own rows (unlabelled rows left out of the class factor).

- **MIG**, the mutual information gap (Chen et al. 2018): each latent is discretised into
  ``bins`` equal-width bins over its range; I(z_j; v) is the plug-in mutual information
  (nats) of the binned latent and the factor; the factor's score is the gap between the
  two largest I(z_j; v) divided by the factor's entropy H(v) (nats). MIG is the mean over
  factors.
- **DCI** (Eastwood & Williams 2018): an importance matrix R (D × K), column k the
  impurity-based feature importances of a gradient-boosted classifier predicting factor
  k from z. Disentanglement: per latent, 1 − H_K(R_j· / Σ_k R_jk) (entropy in base K),
  averaged with weights Σ_k R_jk / Σ R. Completeness: per factor, 1 − H_D(R_·k / Σ_j
  R_jk), averaged over factors. Informativeness: the classifiers' held-out accuracy.
- **SAP**, the separated attribute predictability (Kumar et al. 2018): S_jk is the
  held-out balanced accuracy, adjusted for chance ((b − 1/V) / (1 − 1/V) for V values:
  0 at chance, 1 when perfect, so binary and many-valued factors compare), of a
  classifier of factor k that sees latent j alone (a threshold for a binary factor,
  chosen to maximise balanced accuracy on the training rows; a decision tree with as
  many leaves as values for a factor of more values); a factor's score is the gap
  between its two largest S_jk. SAP is the mean over factors.

The estimators' settings change the numbers, so :data:`DEFAULTS` names every one and
:mod:`vaekit.latent_scores` records them with each result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Every estimator setting (recorded with each result; docs/evaluation.md states them).
DEFAULTS: dict[str, Any] = {
    "mig_bins": 20,
    "mig_binning": "equal-width over each latent's range in the scored rows",
    "mi_units": "nats",
    "dci_estimator": "sklearn GradientBoostingClassifier",
    "dci_estimator_options": {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1},
    "dci_importance": "impurity-based feature_importances_",
    "sap_classifier_binary": "one threshold and direction maximising balanced accuracy",
    "sap_classifier_multiclass": "sklearn DecisionTreeClassifier, max_leaf_nodes = values, "
    "class_weight='balanced'",
    "sap_score": "held-out balanced accuracy adjusted for chance: (b - 1/V) / (1 - 1/V)",
}


def discretize(z: np.ndarray, bins: int = DEFAULTS["mig_bins"]) -> np.ndarray:
    """(N, D) int bin index of each latent value: ``bins`` equal-width bins spanning each
    column's minimum to maximum (a constant column falls into one bin)."""
    z = np.asarray(z, dtype=np.float64)
    lo, hi = z.min(0), z.max(0)
    width = np.where(hi > lo, (hi - lo) / bins, 1.0)
    return np.clip(((z - lo) / width).astype(np.int64), 0, bins - 1)


def entropy(values: np.ndarray) -> float:
    """Plug-in entropy (nats) of the discrete values' empirical distribution."""
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(codes: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """(D,) plug-in mutual information (nats) between each column of the discrete
    ``codes`` (N, D) and the discrete ``factor`` (N,)."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factor, codes[:, j]) for j in range(codes.shape[1])])


def mig_gap(mi: np.ndarray, factor_entropy: float) -> float:
    """One factor's mutual information gap: (largest − second largest I(z_j; v)) / H(v).
    With one latent the second is 0."""
    top = np.sort(np.asarray(mi, dtype=np.float64))[::-1]
    second = top[1] if len(top) > 1 else 0.0
    return float((top[0] - second) / factor_entropy)


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of the non-negative ``p`` (rows normalised to sum 1), in
    ``base``; a row of zeros has entropy 1 (nothing known)."""
    totals = p.sum(1, keepdims=True)
    q = np.divide(p, totals, out=np.zeros_like(p, dtype=np.float64), where=totals > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q), 0.0)
    h = -terms.sum(1) / np.log(base)
    return np.where(totals[:, 0] > 0, h, 1.0)


def dci_scores(importance: np.ndarray) -> dict[str, Any]:
    """Disentanglement and completeness from an importance matrix R (D latents × K factors).

    Returns ``disentanglement`` (None with fewer than two factors: one factor cannot be
    shared out), ``completeness`` (mean over factors), ``per_latent`` (D disentanglements,
    None as above), ``latent_weight`` (D) and ``per_factor`` (K completenesses).
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    completeness = 1 - _normalised_entropy(r.T, d) if d > 1 else np.ones(k)
    total = r.sum()
    weight = r.sum(1) / total if total > 0 else np.full(d, 1 / d)
    if k > 1:
        per_latent = 1 - _normalised_entropy(r, k)
        disentanglement: float | None = float((weight * per_latent).sum())
        latent_scores: list[float] | None = per_latent.tolist()
    else:
        disentanglement, latent_scores = None, None
    return {
        "disentanglement": disentanglement,
        "completeness": float(completeness.mean()),
        "per_latent": latent_scores,
        "latent_weight": weight.tolist(),
        "per_factor": completeness.tolist(),
    }


def importance(
    z_train: np.ndarray,
    v_train: np.ndarray,
    z_test: np.ndarray,
    v_test: np.ndarray,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """One factor's column of the DCI importance matrix and its informativeness: the
    (D,) feature importances of a gradient-boosted classifier of ``v`` from ``z``
    (settings in :data:`DEFAULTS`), and its accuracy on the held-out rows."""
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(**DEFAULTS["dci_estimator_options"], random_state=seed)
    model.fit(z_train, v_train)
    return model.feature_importances_.astype(np.float64), float(model.score(z_test, v_test))


def adjusted_balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The mean over the V values present in ``truth`` of the share predicted right,
    adjusted for chance: (b − 1/V) / (1 − 1/V) (0: no better than chance, 1: perfect)."""
    values = np.unique(truth)
    b = float(np.mean([(predicted[truth == v] == v).mean() for v in values]))
    chance = 1 / len(values)
    return (b - chance) / (1 - chance) if len(values) > 1 else 0.0


def best_threshold(x: np.ndarray, v: np.ndarray) -> tuple[float, bool]:
    """The threshold t and direction on the 1-D ``x`` that best separate the binary
    ``v`` (values 0/1) by balanced accuracy: predict 1 where x > t (``above``) or where
    x <= t (not ``above``). Candidates: midpoints between adjacent distinct values, and
    below the smallest (predict one value everywhere); ties go to the smaller t."""
    x = np.asarray(x, dtype=np.float64)
    v = np.asarray(v).astype(bool)
    order = np.argsort(x, kind="stable")
    xs, vs = x[order], v[order]
    positives, negatives = max(int(vs.sum()), 1), max(int((~vs).sum()), 1)
    # rows at or below each cut: the first i rows (i = 0 … N), cut only between distinct values
    pos_below = np.concatenate([[0], np.cumsum(vs)])
    neg_below = np.concatenate([[0], np.cumsum(~vs)])
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(xs) > 0) + 1])
    # predict 1 above the cut: true positives above, true negatives below
    above = ((vs.sum() - pos_below[cuts]) / positives + neg_below[cuts] / negatives) / 2
    below = 1 - above  # the opposite direction's balanced accuracy
    best_above, best_below = int(np.argmax(above)), int(np.argmax(below))
    use_above = above[best_above] >= below[best_below]
    i = cuts[best_above if use_above else best_below]
    t = xs[0] - 1.0 if i == 0 else (xs[i - 1] + xs[i]) / 2
    return float(t), bool(use_above)


def sap_column(
    z_train: np.ndarray,
    v_train: np.ndarray,
    z_test: np.ndarray,
    v_test: np.ndarray,
) -> np.ndarray:
    """(D,) SAP scores of one factor: for each latent alone, the held-out balanced accuracy
    (adjusted for chance) of the classifier in :data:`DEFAULTS` trained on the training
    rows."""
    from sklearn.tree import DecisionTreeClassifier

    values = np.unique(v_train)
    out = np.zeros(z_train.shape[1])
    for j in range(z_train.shape[1]):
        if len(values) == 2:
            t, above = best_threshold(z_train[:, j], v_train == values[1])
            hit = z_test[:, j] > t if above else z_test[:, j] <= t
            predicted = np.where(hit, values[1], values[0])
        else:
            tree = DecisionTreeClassifier(
                max_leaf_nodes=len(values), class_weight="balanced", random_state=0
            )
            tree.fit(z_train[:, j : j + 1], v_train)
            predicted = tree.predict(z_test[:, j : j + 1])
        out[j] = adjusted_balanced_accuracy(v_test, predicted)
    return out


def sap_gap(scores: np.ndarray) -> float:
    """One factor's SAP: the largest minus the second largest latent score (one latent: the
    largest)."""
    top = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    return float(top[0] - (top[1] if len(top) > 1 else 0.0))


__all__ = [
    "DEFAULTS",
    "adjusted_balanced_accuracy",
    "best_threshold",
    "dci_scores",
    "discretize",
    "entropy",
    "importance",
    "mig_gap",
    "mutual_information",
    "sap_column",
    "sap_gap",
]
