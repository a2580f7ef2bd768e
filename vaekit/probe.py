"""Linear probes: how well a label can be read off the latents by a linear classifier.

:func:`holdout_split` parts a factor's rows into training and held-out rows (stratified
by the factor, seeded); :func:`linear_probe` trains scikit-learn's
``LogisticRegression`` on standardised latents (the scaler fitted on the training
rows) and scores it on the held-out rows, beside the majority-class baseline: the
share of held-out rows that carry the training rows' most frequent value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The probe's settings (recorded with each result; docs/evaluation.md states them).
PROBE_SETTINGS: dict[str, Any] = {
    "probe": "sklearn StandardScaler + LogisticRegression on the posterior means",
    "probe_options": {"C": 1.0, "max_iter": 1000, "solver": "lbfgs"},
    "baseline": "the training rows' most frequent value, scored on the held-out rows",
}
#: Fewest rows a factor needs to be split and scored.
MIN_ROWS = 10


@dataclass
class Holdout:
    """Row indices (into the factor's rows) for training and held-out scoring."""

    train: np.ndarray
    test: np.ndarray
    stratified: bool


@dataclass
class ProbeResult:
    """A linear probe's held-out accuracy beside the majority-class baseline."""

    accuracy: float
    baseline: float
    converged: bool


def holdout_split(factor: np.ndarray, test_fraction: float, seed: int) -> Holdout:
    """Part ``len(factor)`` rows into training and held-out rows, ``test_fraction`` of
    them held out, stratified by ``factor`` (plain random when a value has fewer than two
    rows, which cannot be stratified), with ``seed``."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(factor))
    _, counts = np.unique(factor, return_counts=True)
    stratified = bool(counts.min() >= 2)
    try:
        train, test = train_test_split(
            index,
            test_size=test_fraction,
            random_state=seed,
            stratify=factor if stratified else None,
        )
    except ValueError:  # more values than held-out rows: stratifying cannot place them all
        stratified = False
        train, test = train_test_split(index, test_size=test_fraction, random_state=seed)
    return Holdout(np.sort(train), np.sort(test), stratified)


def linear_probe(
    z_train: np.ndarray,
    v_train: np.ndarray,
    z_test: np.ndarray,
    v_test: np.ndarray,
    seed: int = 0,
) -> ProbeResult:
    """Train the probe in :data:`PROBE_SETTINGS` on ``(z_train, v_train)`` and return its
    accuracy on ``(z_test, v_test)`` and the majority-class baseline's."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(**PROBE_SETTINGS["probe_options"], random_state=seed),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(z_train, v_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    values, counts = np.unique(v_train, return_counts=True)
    majority = values[np.argmax(counts)]
    return ProbeResult(
        accuracy=float(model.score(z_test, v_test)),
        baseline=float(np.mean(v_test == majority)),
        converged=converged,
    )


__all__ = ["MIN_ROWS", "PROBE_SETTINGS", "Holdout", "ProbeResult", "holdout_split", "linear_probe"]
