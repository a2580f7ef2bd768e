"""Score a latent store's representation against its labels: linear probes and MIG, DCI
and SAP (``vaekit score``).

The factors are the store's class (labelled rows only) and each binary attribute. The
rows scored are the store's rows (or one split's), a seeded random subset of
``max_rows`` of them when there are more. Per factor, its rows are split once into
training and held-out rows (``test_fraction`` held out, stratified by the factor,
``seed``), and that split serves the probe, the DCI classifier and SAP; MIG uses all
the factor's rows. The latents are the posterior means. The arithmetic lives in
:mod:`vaekit.probe` and :mod:`vaekit.disentanglement`; every setting is in the
result's ``settings``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaekit import disentanglement as dis
from vaekit.errors import DataError, UsageError
from vaekit.probe import MIN_ROWS, PROBE_SETTINGS, holdout_split, linear_probe

#: Rows scored at most (a seeded subset beyond): DCI's boosted trees cost ~1 s per
#: factor per 2,000 rows on one core, ten times that for a 10-value class.
MAX_ROWS = 5000
TEST_FRACTION = 0.2

#: A (title, header, rows) table, as the CLI and a plain-text printer show it.
Table = tuple[str, list[str], list[list[Any]]]


@dataclass
class FactorScore:
    """One factor's scores (None where it was skipped: ``skipped`` says why)."""

    name: str
    kind: str  # "class" or "attribute"
    rows: int
    values: int
    probe_accuracy: float | None = None
    majority_baseline: float | None = None
    mig: float | None = None
    mig_latent: int | None = None  # the latent with the most information about it
    dci_informativeness: float | None = None
    dci_completeness: float | None = None
    sap: float | None = None
    sap_latent: int | None = None  # the latent whose classifier scores best
    stratified: bool | None = None
    skipped: str | None = None


@dataclass
class LatentScores:
    """What :func:`score_latents` measured. Matrices are D latents × the scored factors
    (``matrix_factors``): mutual information (nats), DCI importance, SAP scores."""

    store: str
    content_hash: str
    split: str
    store_rows: int
    rows: int
    latent_dim: int
    mig: float | None
    dci_disentanglement: float | None
    dci_completeness: float | None
    dci_informativeness: float | None
    sap: float | None
    factors: list[FactorScore]
    matrix_factors: list[str]
    mutual_information: list[list[float]]
    importance: list[list[float]]
    sap_scores: list[list[float]]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``--json`` prints)."""
        return asdict(self)


def check_score_options(max_rows: int, test_fraction: float) -> None:
    """UsageError for a ``max_rows`` or ``test_fraction`` that cannot score anything."""
    if max_rows < MIN_ROWS:
        raise UsageError(f"--max-rows must be at least {MIN_ROWS}, got {max_rows}")
    if not 0.05 <= test_fraction <= 0.5:
        raise UsageError(f"--test-fraction must be within 0.05 and 0.5, got {test_fraction}")


def score_latents(
    store_path: str | Path,
    split: str | None = None,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
) -> LatentScores:
    """Probe accuracies and MIG, DCI and SAP of the store's posterior means against its
    class and attributes (see the module docstring).

    ``split``: score only that split's rows (``train``, ``val``, ``test``; None or
    ``all``: every row). Raises DataError for a store without labels or attributes, and
    UsageError for an unknown split or options out of range.
    """
    from vaekit.store import LatentStore

    check_score_options(max_rows, test_fraction)
    with LatentStore.open(store_path) as store:
        factors = _factors(store)
        rows = store.select([], split=split)
        store_rows = store.n
        if len(rows) > max_rows:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
        z = store.read(rows)[0].astype(np.float64)
        values = {name: (kind, v[rows]) for name, (kind, v) in factors.items()}
        content_hash = store.content_hash()
        path = str(store.path)
    if len(rows) < MIN_ROWS:
        raise DataError(
            f"'{path}' has {len(rows)} rows{f' in split {split}' if split else ''}; "
            f"scoring needs at least {MIN_ROWS}: encode more images"
        )
    codes = dis.discretize(z, dis.DEFAULTS["mig_bins"])
    scored: list[FactorScore] = []
    names: list[str] = []
    mi_columns, importance_columns, sap_columns = [], [], []
    informativeness = []
    notes: list[str] = []
    for name, (kind, v) in values.items():
        known = v >= 0
        zf, vf, cf = z[known], v[known], codes[known]
        distinct = np.unique(vf)
        score = FactorScore(name, kind, rows=int(known.sum()), values=len(distinct))
        scored.append(score)
        if len(distinct) < 2:
            score.skipped = "one value only in the scored rows"
            continue
        if len(vf) < MIN_ROWS:
            score.skipped = f"{len(vf)} rows; at least {MIN_ROWS} are needed"
            continue
        holdout = holdout_split(vf, test_fraction, seed)
        if len(np.unique(vf[holdout.train])) < 2:
            score.skipped = "one value only in the training rows"
            continue
        score.stratified = holdout.stratified
        train = (zf[holdout.train], vf[holdout.train])
        test = (zf[holdout.test], vf[holdout.test])
        probe = linear_probe(*train, *test, seed=seed)
        score.probe_accuracy, score.majority_baseline = probe.accuracy, probe.baseline
        if not probe.converged:
            notes.append(f"the probe of {name} did not converge in its iteration limit")
        mi = dis.mutual_information(cf, vf)
        score.mig = dis.mig_gap(mi, dis.entropy(vf))
        score.mig_latent = int(np.argmax(mi))
        column, score.dci_informativeness = dis.importance(*train, *test, seed=seed)
        sap = dis.sap_column(*train, *test)
        score.sap, score.sap_latent = dis.sap_gap(sap), int(np.argmax(sap))
        names.append(name)
        mi_columns.append(mi)
        importance_columns.append(column)
        sap_columns.append(sap)
        informativeness.append(score.dci_informativeness)
    if not names:
        raise DataError(
            f"no label of '{path}' could be scored ("
            + "; ".join(f"{s.name}: {s.skipped}" for s in scored)
            + "); score a store whose labels vary"
        )
    dci = dis.dci_scores(np.stack(importance_columns, 1))
    for score, completeness in zip(
        (s for s in scored if s.skipped is None), dci["per_factor"], strict=True
    ):
        score.dci_completeness = completeness
    if dci["disentanglement"] is None:
        notes.append("DCI disentanglement needs at least two factors; one was scored")
    return LatentScores(
        store=path,
        content_hash=content_hash,
        split=split or "all",
        store_rows=store_rows,
        rows=len(rows),
        latent_dim=z.shape[1],
        mig=float(np.mean([s.mig for s in scored if s.mig is not None])),
        dci_disentanglement=dci["disentanglement"],
        dci_completeness=dci["completeness"],
        dci_informativeness=float(np.mean(informativeness)),
        sap=float(np.mean([s.sap for s in scored if s.sap is not None])),
        factors=scored,
        matrix_factors=names,
        mutual_information=np.stack(mi_columns, 1).tolist(),
        importance=np.stack(importance_columns, 1).tolist(),
        sap_scores=np.stack(sap_columns, 1).tolist(),
        settings=score_settings(max_rows, seed, test_fraction),
        notes=notes,
    )


def score_settings(max_rows: int, seed: int, test_fraction: float) -> dict[str, Any]:
    """Every setting that changes the scores."""
    return {
        "latents": "posterior means (mu)",
        "max_rows": max_rows,
        "seed": seed,
        "test_fraction": test_fraction,
        "holdout": "per factor, stratified by it (plain random where a value has < 2 rows)",
        "class_factor_rows": "labelled rows only",
        **PROBE_SETTINGS,
        **dis.DEFAULTS,
    }


def _factors(store: Any) -> dict[str, tuple[str, np.ndarray]]:
    """``name -> (kind, (N,) int values, -1 where unknown)``: the class, then attributes."""
    out: dict[str, tuple[str, np.ndarray]] = {}
    labels = store.labels()
    if labels is not None:
        out["class"] = ("class", labels.astype(np.int64))
    attributes, names = store.attributes(), store.attribute_names
    if attributes is not None and names:
        for a, name in enumerate(names):
            key = name if name not in out else f"attribute {name}"
            out[key] = ("attribute", attributes[:, a].astype(np.int64))
    if not out:
        raise DataError(
            f"'{store.path}' has no class labels or attributes to score the latents "
            "against; encode a labelled dataset (class folders, CelebA attributes)"
        )
    return out


def score_tables(result: LatentScores) -> list[Table]:
    """The result as (title, header, rows) tables, for the CLI and :func:`format_scores`."""
    split = "" if result.split == "all" else f", {result.split} split"
    summary = [
        ["MIG", result.mig],
        ["DCI disentanglement", result.dci_disentanglement],
        ["DCI completeness", result.dci_completeness],
        ["DCI informativeness (held-out accuracy)", result.dci_informativeness],
        ["SAP", result.sap],
    ]
    factors = [
        [
            f.name,
            f.rows,
            f.values,
            f.probe_accuracy,
            f.majority_baseline,
            f.mig,
            f.mig_latent,
            f.dci_informativeness,
            f.dci_completeness,
            f.sap,
            f.sap_latent,
        ]
        for f in result.factors
    ]
    header = [
        "factor",
        "rows",
        "values",
        "probe acc.",
        "majority",
        "MIG",
        "MIG latent",
        "DCI info.",
        "DCI compl.",
        "SAP",
        "SAP latent",
    ]
    return [
        (
            f"latent scores of {result.store} ({result.rows:,} of {result.store_rows:,} rows"
            f"{split}, {result.latent_dim} latents)",
            ["measure", "value"],
            summary,
        ),
        (
            f"per factor (held out: {result.settings['test_fraction']:.0%}, "
            f"seed {result.settings['seed']})",
            header,
            factors,
        ),
    ]


def cell(value: Any) -> str:
    """A table cell: floats to 3 decimals, counts with separators, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_scores(result: LatentScores) -> str:
    """The tables as plain text (no rich), with the skipped factors and notes below."""
    lines: list[str] = []
    for title, header, rows in score_tables(result):
        cells = [header, *([cell(v) for v in row] for row in rows)]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        lines.append(title)
        for r in cells:
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
        lines.append("")
    for f in result.factors:
        if f.skipped:
            lines.append(f"skipped {f.name}: {f.skipped}")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "MAX_ROWS",
    "TEST_FRACTION",
    "FactorScore",
    "LatentScores",
    "cell",
    "check_score_options",
    "format_scores",
    "score_latents",
    "score_settings",
    "score_tables",
]
