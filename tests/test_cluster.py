"""fit-cluster: streaming fits against numpy/sklearn, the aggregate posterior, every
covariance type, mixtures, cluster files, and the errors a user can hit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf
from sklearn.mixture import GaussianMixture
from typer.testing import CliRunner

from vaekit.cli import app
from vaekit.cluster import (
    COVARIANCE_TYPES,
    Cluster,
    Moments,
    fit_cluster,
    fit_gaussian_stream,
    fit_mixture,
    resolve_cluster_path,
    weak_gate,
)
from vaekit.errors import DataError, UsageError
from vaekit.store import LatentStoreWriter

runner = CliRunner()
D = 5
ATTRIBUTES = ["Smiling", "Eyeglasses"]


def make_store(
    path: Path, n: int = 600, seed: int = 0, offset: float = 3.0, smiling: int | None = None
) -> dict:
    """A latent store of n rows: smiling rows around +offset, the rest around -offset
    (``smiling``: exactly that many smiling rows, the first ones)."""
    rng = np.random.default_rng(seed)
    attrs = rng.random((n, 2)) < [0.5, 0.3]
    if smiling is not None:
        attrs[:, 0] = np.arange(n) < smiling
    scale = np.array([1.0, 2.0, 0.5, 1.5, 0.2])
    mu = rng.standard_normal((n, D)) * scale + np.where(attrs[:, :1], offset, -offset)
    mu[:, 1] += 0.8 * mu[:, 0]  # correlated dimensions
    logvar = rng.normal(-1.0, 0.4, size=(n, D))
    labels = rng.integers(0, 3, size=n)
    split = (np.arange(n) % 10 == 0).astype(np.uint8)  # every tenth row "val"
    with LatentStoreWriter(
        path,
        n,
        D,
        class_names=["cat", "dog", "bird"],
        attribute_names=ATTRIBUTES,
        split_names=["train", "val", "test"],
        attrs={"run_dir": "/runs/x", "weights_sha256": "abc", "model_config": {"latent_dim": D}},
        chunk_rows=64,
    ) as writer:
        writer.append(
            mu.astype(np.float32),
            logvar.astype(np.float32),
            labels=labels,
            attributes=attrs,
            ids=[str(i) for i in range(n)],
            split=split,
        )
        writer.finish()
    return {
        "mu": mu.astype(np.float32).astype(np.float64),
        "logvar": logvar.astype(np.float32).astype(np.float64),
        "attrs": attrs,
        "labels": labels,
        "split": split,
    }


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "latents.h5"
    return path, make_store(path)


def aggregate(mu: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference: mean(mu), Cov(mu) (divided by n) + diag(mean sigma^2)."""
    return mu.mean(0), np.cov(mu.T, bias=True) + np.diag(np.exp(logvar).mean(0))


def chunks(mu, logvar, size):
    for lo in range(0, len(mu), size):
        yield mu[lo : lo + size], logvar[lo : lo + size]


# -- the streaming fit -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_streaming_fit_equals_numpy_whatever_the_chunk_size(store, size):
    _, ref = store
    mean, cov, n = fit_gaussian_stream(chunks(ref["mu"], ref["logvar"], size), D, "full")
    want_mean, want_cov = aggregate(ref["mu"], ref["logvar"])
    assert n == len(ref["mu"])
    np.testing.assert_allclose(mean, want_mean, atol=1e-10)
    np.testing.assert_allclose(cov, want_cov, atol=1e-10)


def test_streaming_is_exact_far_from_the_origin():
    rng = np.random.default_rng(1)
    mu = rng.standard_normal((1000, 3)) * 1e-2 + 1e4  # tiny spread, huge mean
    logvar = np.full((1000, 3), -20.0)
    _, cov, _ = fit_gaussian_stream(chunks(mu, logvar, 100), 3, "full")
    np.testing.assert_allclose(cov, aggregate(mu, logvar)[1], rtol=1e-6)


def test_shrunk_equals_sklearn_ledoit_wolf_plus_posterior_variance(store):
    _, ref = store
    mu, logvar = ref["mu"], ref["logvar"]
    moments = Moments(D)
    for m, lv in chunks(mu, logvar, 33):
        moments.update(m, lv)
    lw = LedoitWolf().fit(mu)
    shrunk, shrinkage = moments.ledoit_wolf()
    np.testing.assert_allclose(shrunk, lw.covariance_, atol=1e-10)
    assert shrinkage == pytest.approx(lw.shrinkage_, abs=1e-10)
    want = lw.covariance_ + np.diag(np.exp(logvar).mean(0))
    np.testing.assert_allclose(moments.covariance("shrunk"), want, atol=1e-10)


def test_diag_and_spherical_are_the_full_fit_reduced(store):
    _, ref = store
    _, full = aggregate(ref["mu"], ref["logvar"])
    _, diag, _ = fit_gaussian_stream(chunks(ref["mu"], ref["logvar"], 50), D, "diag")
    _, sph, _ = fit_gaussian_stream(chunks(ref["mu"], ref["logvar"], 50), D, "spherical")
    np.testing.assert_allclose(diag, np.diag(np.diag(full)), atol=1e-10)
    np.testing.assert_allclose(sph, np.trace(full) / D * np.eye(D), atol=1e-10)


def test_the_formula_is_the_covariance_of_the_aggregate_posterior():
    """Draws z_i ~ N(mu_i, diag sigma_i^2) of the mixture have the fitted mean/covariance."""
    rng = np.random.default_rng(2)
    mu = rng.standard_normal((40, 3)) * [1.0, 0.3, 2.0]
    logvar = rng.normal(0.0, 0.5, size=(40, 3))
    mean, cov, _ = fit_gaussian_stream([(mu, logvar)], 3, "full")
    which = rng.integers(0, 40, size=400_000)
    z = mu[which] + np.exp(0.5 * logvar[which]) * rng.standard_normal((400_000, 3))
    np.testing.assert_allclose(z.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.03)
    # the spread of the means alone is too narrow
    assert np.all(np.diag(np.cov(mu.T, bias=True)) < np.diag(cov) - 0.5)


# -- fit_cluster on a store --------------------------------------------------------------------


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_fit_cluster_every_covariance_type(store, kind):
    path, ref = store
    cluster = fit_cluster(path, "smiling", covariance=kind, components=1, gate=0)
    rows = ref["attrs"][:, 0]
    want_mean, _ = aggregate(ref["mu"][rows], ref["logvar"][rows])
    want = Moments(D)
    want.update(ref["mu"][rows], ref["logvar"][rows])
    assert cluster.n == rows.sum() and cluster.latent_dim == D
    assert cluster.query == "smiling" and cluster.covariance_type == kind
    np.testing.assert_allclose(cluster.mean, want_mean, atol=1e-9)
    np.testing.assert_allclose(cluster.covariances[0], want.covariance(kind), atol=1e-9)
    assert cluster.store["content_hash"] and cluster.model["weights_sha256"] == "abc"
    assert cluster.model["run_dir"] == "/runs/x"


def test_labels_are_case_insensitive_and_anded(store):
    path, ref = store
    a = fit_cluster(path, ["SMILING", "~eyeglasses"])
    b = fit_cluster(path, ["smiling and not Eyeglasses"])
    rows = ref["attrs"][:, 0] & ~ref["attrs"][:, 1]
    assert a.n == b.n == rows.sum()
    np.testing.assert_array_equal(a.means, b.means)
    assert a.query == "smiling and not eyeglasses"


def test_classes_and_splits(store):
    path, ref = store
    cluster = fit_cluster(path, "Dog", split="val")
    rows = (ref["labels"] == 1) & (ref["split"] == 1)
    assert cluster.n == rows.sum() and cluster.split == "val"
    np.testing.assert_allclose(cluster.mean, ref["mu"][rows].mean(0), atol=1e-9)


def test_max_rows_is_a_seeded_sample(store):
    path, _ = store
    a = fit_cluster(path, "smiling", max_rows=50, seed=3)
    b = fit_cluster(path, "smiling", max_rows=50, seed=3)
    c = fit_cluster(path, "smiling", max_rows=50, seed=4)
    assert a.fitted_rows == 50 and a.n > 50
    np.testing.assert_array_equal(a.covariances, b.covariances)
    assert not np.array_equal(a.covariances, c.covariances)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_mixtures_recover_two_blobs_with_posterior_variance_added(store, kind):
    path, ref = store
    cluster = fit_cluster(path, "eyeglasses", components=2, covariance=kind, seed=0)
    assert cluster.components == 2 and cluster.weights.sum() == pytest.approx(1.0)
    rows = ref["attrs"][:, 1]
    smiling = ref["attrs"][rows, 0]
    found = sorted(cluster.means[:, 0])
    assert found[0] == pytest.approx(ref["mu"][rows][~smiling, 0].mean(), abs=0.3)
    assert found[1] == pytest.approx(ref["mu"][rows][smiling, 0].mean(), abs=0.3)
    # each component's covariance = sklearn's fit of the means + its mean posterior variance
    if kind != "shrunk":
        gmm = GaussianMixture(2, covariance_type=kind, random_state=0, reg_covar=1e-6)
        gmm.fit(ref["mu"][rows])
        order = np.argsort(gmm.means_[:, 0])
        mine = np.argsort(cluster.means[:, 0])
        resp = gmm.predict_proba(ref["mu"][rows])
        var = (resp.T @ np.exp(ref["logvar"][rows])) / resp.sum(0)[:, None]
        for k_ref, k in zip(order, mine, strict=True):
            spread = np.diag(cluster.covariances[k]) - (
                var[k_ref].mean() if kind == "spherical" else var[k_ref]
            )
            got = gmm.covariances_[k_ref]
            want = np.diag(got) if kind == "full" else got * np.ones(D)
            np.testing.assert_allclose(spread, want, rtol=1e-5, atol=1e-6)


def test_fit_mixture_on_plain_arrays():
    rng = np.random.default_rng(0)
    mu = np.concatenate([rng.normal(-4, 1, (200, 2)), rng.normal(4, 1, (100, 2))])
    logvar = np.full_like(mu, np.log(0.25))
    weights, means, covs = fit_mixture(mu, logvar, 2, "diag", seed=0)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(weights[order], [2 / 3, 1 / 3], atol=0.01)
    np.testing.assert_allclose(np.diagonal(covs[order], axis1=1, axis2=2), 1.25, atol=0.25)


# -- cluster files -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("components", [1, 2])
def test_json_round_trip(store, tmp_path, kind, components):
    path, _ = store
    out = tmp_path / "c" / "smiling.json"
    cluster = fit_cluster(path, "smiling", covariance=kind, components=components, output=out)
    loaded = Cluster.load(out)
    np.testing.assert_allclose(loaded.weights, cluster.weights)
    np.testing.assert_allclose(loaded.means, cluster.means)
    np.testing.assert_allclose(loaded.covariances, cluster.covariances)
    for field in ("query", "terms", "n", "covariance_type", "store", "model", "split"):
        assert getattr(loaded, field) == getattr(cluster, field)
    np.testing.assert_array_equal(loaded.sample(10, seed=1), cluster.sample(10, seed=1))
    data = json.loads(out.read_text())
    assert data["format"] == "vaekit-cluster" and data["latent_dim"] == D
    assert ("mean" in data) == (components == 1) and ("mixture" in data) == (components > 1)


def test_sampling_matches_the_fit_and_temperature_scales_it(store):
    path, _ = store
    cluster = fit_cluster(path, "smiling", components=1, gate=0)
    z = cluster.sample(50_000, seed=0)
    assert z.dtype == np.float32 and z.shape == (50_000, D)
    np.testing.assert_allclose(z.mean(0), cluster.mean, atol=0.05)
    np.testing.assert_allclose(np.cov(z.T), cluster.covariance, atol=0.1)
    np.testing.assert_allclose(cluster.sample(3, seed=0, temperature=0.0), [cluster.mean] * 3)
    half = cluster.sample(50_000, seed=0, temperature=0.5)
    np.testing.assert_allclose(np.cov(half.T), cluster.covariance / 4, atol=0.05)


def test_damaged_and_foreign_cluster_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a readable JSON"):
        Cluster.load(bad)
    bad.write_text('{"hello": 1}')
    with pytest.raises(DataError, match="not a vaekit cluster file"):
        Cluster.load(bad)
    with pytest.raises(DataError, match="fit-cluster"):
        Cluster.load(tmp_path / "missing.json")


def test_a_hand_edited_latent_size_is_named(store, tmp_path):
    """A cluster file whose latent_dim was edited away from its means' length is refused
    naming both, for a mixture and for one Gaussian."""
    path, _ = store
    for components, gate in ((3, None), (1, 0.0)):  # a mixture; one Gaussian, 0.4's fit
        out = tmp_path / f"c{components}.json"
        options = {} if gate is None else {"gate": gate}
        fit_cluster(path, "smiling", components=components, output=out, **options)
        data = json.loads(out.read_text())
        data["latent_dim"] = D - 1
        out.write_text(json.dumps(data))
        with pytest.raises(DataError, match=f"means of {D} numbers but latent_dim {D - 1}"):
            Cluster.load(out)
    # a mixture whose means were all deleted is told by count, not by length
    mixture = tmp_path / "c3.json"
    data = json.loads(mixture.read_text())
    data["latent_dim"], data["mixture"]["means"] = D, []
    mixture.write_text(json.dumps(data))
    with pytest.raises(DataError, match="3 mixture weights, 0 means and 3 covariances"):
        Cluster.load(mixture)


def test_names_resolve_to_cluster_files(store, tmp_path, monkeypatch):
    path, _ = store
    monkeypatch.chdir(tmp_path)
    fit_cluster(path, ["smiling", "~eyeglasses"], output="clusters/smiling_and_not_eyeglasses.json")
    assert resolve_cluster_path("smiling and not eyeglasses") == Path(
        "clusters/smiling_and_not_eyeglasses.json"
    )
    with pytest.raises(DataError, match="vaekit fit-cluster --label bald"):
        resolve_cluster_path("bald")


# -- errors ------------------------------------------------------------------------------------


def test_unknown_label_lists_the_labels_with_counts(store):
    path, ref = store
    with pytest.raises(DataError) as info:
        fit_cluster(path, "smilng")
    message = str(info.value)
    assert "did you mean 'Smiling'" in message
    assert f"Smiling ({ref['attrs'][:, 0].sum()})" in message and "cat (" in message


def test_too_small_a_subset_names_the_fix(tmp_path):
    path = tmp_path / "few.h5"
    make_store(path, n=40, smiling=D)  # D rows: too few for a full covariance in D dims
    with pytest.raises(
        DataError, match="only 5 rows .* use --covariance diag or --covariance shrunk"
    ):
        fit_cluster(path, "smiling")
    assert fit_cluster(path, "smiling", covariance="diag").n == D
    assert fit_cluster(path, "smiling", covariance="shrunk").n == D
    with pytest.raises(DataError, match="fewer --components"):
        fit_cluster(path, "smiling", covariance="diag", components=3)
    make_store(path, n=40, smiling=0)
    with pytest.raises(DataError, match="no rows match 'smiling'"):
        fit_cluster(path, "smiling", covariance="diag")


def test_bad_options(store):
    path, _ = store
    with pytest.raises(UsageError, match="choose one of: full, diag, shrunk, spherical"):
        fit_cluster(path, "smiling", covariance="ful")
    with pytest.raises(UsageError, match="--components"):
        fit_cluster(path, "smiling", components=0)


# -- the command -------------------------------------------------------------------------------


def test_cli_writes_clusters_query_json_by_default(store, tmp_path, monkeypatch):
    path, _ = store
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["fit-cluster", "--latents", str(path), "--label", "Smiling", "--label", "~eyeglasses"]
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "clusters" / "smiling_and_not_eyeglasses.json"
    assert Cluster.load(out).query == "smiling and not eyeglasses"
    result = runner.invoke(
        app,
        ["fit-cluster", "--latents", str(path), "-l", "smiling", "--components", "2",
         "--covariance", "diag", "--max-rows", "100", "-o", "mine/s.json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Cluster.load(tmp_path / "mine/s.json").fitted_rows == 100


def test_fit_cluster_warns_when_the_latents_barely_separate_the_label(store, tmp_path):
    """Eyeglasses is drawn apart from the latents of the test store: the probe cannot
    keep 80% of the members above p = 0.5, and fit-cluster says so (still exit 0); the
    separable smiling gets no warning."""
    path, _ = store
    weak = runner.invoke(
        app,
        ["fit-cluster", "--latents", str(path), "-l", "eyeglasses", "-o", str(tmp_path / "e.json")],
    )
    assert weak.exit_code == 0, weak.output
    assert "warning: the latents barely separate 'eyeglasses'" in " ".join(weak.output.split())
    cluster = Cluster.load(tmp_path / "e.json")
    assert cluster.gate["threshold"] < 0.5 and weak_gate(cluster) is not None
    sound = runner.invoke(
        app,
        ["fit-cluster", "--latents", str(path), "-l", "smiling", "-o", str(tmp_path / "s.json")],
    )
    assert sound.exit_code == 0 and "barely" not in sound.output
    assert weak_gate(Cluster.load(tmp_path / "s.json")) is None


def test_cli_exit_codes(store, tmp_path, monkeypatch):
    path, _ = store
    monkeypatch.chdir(tmp_path)
    base = ["fit-cluster", "--latents", str(path)]
    result = runner.invoke(app, [*base, "--label", "frowning"])
    assert result.exit_code == 1 and "available" in result.output
    few = tmp_path / "few.h5"
    make_store(few, n=40, smiling=3)
    result = runner.invoke(app, ["fit-cluster", "--latents", str(few), "--label", "smiling"])
    assert result.exit_code == 1 and "--covariance diag" in result.output
    result = runner.invoke(app, [*base, "--label", "smiling", "--covariance", "bogus"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["fit-cluster", "--latents", "nope.h5", "--label", "smiling"])
    assert result.exit_code == 1 and "vaekit encode" in result.output
    Path("notes.json").write_text("{}")
    result = runner.invoke(app, [*base, "--label", "smiling", "-o", "notes.json"])
    assert result.exit_code == 1 and Path("notes.json").read_text() == "{}"


def test_the_default_fit_is_a_gated_mixture_whose_draws_pass_the_gate(store, tmp_path):
    """Since 0.5: up to 5 components (as the subset allows) and a linear probe that every
    draw must pass (here it is sure of the subset: linear, so the file is version 2) that
    reads back the same."""
    path, ref = store
    cluster = fit_cluster(path, "smiling", output=tmp_path / "s.json")
    assert cluster.components == 5 and cluster.gate is not None
    assert cluster.gate["threshold"] == 0.9 and cluster.gate["accuracy"] > 0.95
    again = Cluster.load(tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["format_version"] == 2
    assert again.gate["kind"] == "linear" and len(again.gate["coef"]) == D
    assert again.gate["coef"] == pytest.approx(cluster.gate["coef"])
    z = again.sample(2000, seed=1)
    assert z.shape == (2000, D) and (again.gate_probability(z) >= 0.9).all()
    np.testing.assert_array_equal(z, again.sample(2000, seed=1))  # seeded
    # the probe points the right way: smiling rows score high, the others low
    p = cluster.gate_probability(ref["mu"])
    assert (p[ref["attrs"][:, 0]] > 0.5).mean() > 0.95 and (
        p[~ref["attrs"][:, 0]] < 0.5
    ).mean() > 0.95
    # no gate, one Gaussian: the version-1 layout older vaekit reads
    plain = fit_cluster(path, "smiling", components=1, gate=0, output=tmp_path / "p.json")
    assert plain.gate is None and plain.components == 1
    assert json.loads((tmp_path / "p.json").read_text())["format_version"] == 1
    # a small subset gets fewer components: 7 rows hold one full-covariance Gaussian in 5 dims
    small = tmp_path / "small.h5"
    make_store(small, smiling=7)
    assert fit_cluster(small, "smiling").components == 1
    # a query every row matches has nothing to tell it from: no gate
    everyone = tmp_path / "all.h5"
    make_store(everyone, smiling=600)
    assert fit_cluster(everyone, "smiling").gate is None


def test_gate_errors(store, tmp_path):
    path, _ = store
    cluster = fit_cluster(path, "smiling", output=tmp_path / "s.json")
    with pytest.raises(UsageError, match="--gate must be in"):
        fit_cluster(path, "smiling", gate=1.0)
    data = json.loads((tmp_path / "s.json").read_text())
    data["gate"]["coef"] = [1.0, 2.0]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="has a gate of shape"):
        Cluster.load(tmp_path / "bad.json")
    # a gate that no draw can pass: an error naming the fix, not an endless loop
    cluster.gate = {**cluster.gate, "coef": [0.0] * len(cluster.gate["coef"]), "intercept": -50.0}
    with pytest.raises(DataError, match="too few draws pass its gate.*--gate 0"):
        cluster.sample(10)
    out = runner.invoke(
        app, ["fit-cluster", "--latents", str(path), "-l", "smiling", "--gate", "2"]
    )
    assert out.exit_code == 2 and "--gate" in out.output


def test_a_gated_cluster_draws_none_and_auto_components_honour_max_rows(store):
    path, _ = store
    cluster = fit_cluster(path, "smiling")
    assert cluster.sample(0).shape == (0, D)
    # 30 fitted rows hold 5 full-covariance components in 5 dims: the count follows --max-rows
    assert fit_cluster(path, "smiling", max_rows=30).components == 5
    assert fit_cluster(path, "smiling", max_rows=12).components == 2


def test_a_quadratic_gate_keeps_a_label_its_neighbours_surround(tmp_path):
    """Latents of a label between two others on one axis (sneakers between sandals and
    boots): no line tells it from both, a quadratic gate does; a linear gate (the file
    layout of vaekit 0.5, and the gate above 32 dimensions) still reads and draws."""
    from vaekit.cluster import fit_gate, gate_features

    rng = np.random.default_rng(0)
    middle = rng.normal([0.0, 0.0], 0.3, (400, 2))
    sides = np.concatenate(
        [rng.normal([-2.0, 0.0], 0.3, (400, 2)), rng.normal([2.0, 0.0], 0.3, (400, 2))]
    )
    gate = fit_gate(middle, sides)  # a linear probe is unsure: it turns quadratic
    assert gate["kind"] == "quadratic" and gate["accuracy"] > 0.97 and gate["threshold"] == 0.9
    features = gate_features(np.array([[0.0, 0.0], [-2.0, 0.0], [2.0, 0.0]]), gate)
    p = 1 / (1 + np.exp(-(features @ np.array(gate["coef"]) + gate["intercept"])))
    assert p[0] > 0.9 and p[1] < 0.1 and p[2] < 0.1
    wide = fit_gate(rng.normal(0, 1, (200, 40)) + 1, rng.normal(0, 1, (200, 40)))
    assert wide["kind"] == "linear" and len(wide["coef"]) == 40  # over 32 dims: linear
    apart = fit_gate(rng.normal(3, 0.3, (200, 2)), rng.normal(-3, 0.3, (200, 2)))
    assert apart["kind"] == "linear"  # a straight boundary is sure: it stays


def test_a_version_2_linear_gate_still_loads(store, tmp_path):
    path, _ = store
    fit_cluster(path, "smiling", output=tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    data["gate"].pop("kind")  # as vaekit 0.5 wrote it
    data["gate"]["coef"] = [0.5] * D
    data["format_version"] = 2
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = Cluster.load(tmp_path / "old.json")
    assert old.gate["kind"] == "linear" and old.sample(50, seed=0).shape == (50, D)
    data["gate"]["kind"] = "cubic"
    (tmp_path / "odd.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="gate of kind 'cubic'"):
        Cluster.load(tmp_path / "odd.json")


def test_a_gate_with_an_image_threshold_redraws_latents_whose_decoded_image_misses(store, tmp_path):
    """``reencode`` stands in for decode-then-encode: a model whose images of latents with a
    low fifth coordinate read as the other side. Real members' images all read right, so
    the image threshold is what 80% of their images reach; draws whose image would read wrong are
    redrawn, and a cluster used without the model draws as before."""
    from vaekit.cluster import gate_format_version

    path, ref = store

    def reencode(z: np.ndarray) -> np.ndarray:
        return np.where(z[:, 4:5] < 2.5, -z, z)

    cluster = fit_cluster(path, "smiling", output=tmp_path / "s.json", reencode=reencode)
    members = ref["mu"][ref["attrs"][:, 0]].astype(np.float32)
    threshold = cluster.gate["image_threshold"]
    assert threshold == pytest.approx(np.quantile(cluster.gate_probability(reencode(members)), 0.2))
    assert 0.9 < threshold < 1
    again = Cluster.load(tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["format_version"] == 4
    assert gate_format_version(again.gate) == 4 and again.gate["image_threshold"] == threshold
    unchecked = again.sample(2000, seed=1)
    assert (unchecked[:, 4] < 2.5).mean() > 0.05  # the model would show these as not smiling
    checked = again.sample(2000, seed=1, reencode=reencode)
    assert (checked[:, 4] >= 2.5).all() and (again.gate_probability(checked) >= 0.9).all()
    assert (again.gate_probability(reencode(checked)) >= threshold).all()

    # members whose images read less sure lower the image threshold (80% of them pass)
    def blur(z: np.ndarray) -> np.ndarray:
        return z * 0.05

    soft = fit_cluster(path, "smiling", reencode=blur)
    members = soft.gate_probability(blur(members))
    assert soft.gate["image_threshold"] < 0.9
    assert (members >= soft.gate["image_threshold"]).mean() == pytest.approx(0.8, abs=0.01)
    data = json.loads((tmp_path / "s.json").read_text())
    data["gate"]["image_threshold"] = 1.5
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="gate image threshold 1.5"):
        Cluster.load(tmp_path / "bad.json")
