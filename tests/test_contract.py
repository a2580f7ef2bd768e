"""The plugin contract, driven the way a third party drives it: kinds that change the
objective, plugin errors, clashing names, old and damaged run configs."""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest
import torch
from typer.testing import CliRunner

import vaekit
from tests.helpers import (
    CriticKind,
    registered,
    tiny_config,
    train_tiny,
    write_fake_distribution,
)
from tests.test_cli import vaekit_command
from vaekit.cli import app
from vaekit.errors import DataError, UsageError
from vaekit.model import VAE, Objective, build_model
from vaekit.runs import open_run
from vaekit.train import train

runner = CliRunner()


class OffsetKind:
    """A kind whose objective is the ELBO plus 1000 nats: the loop must minimise it."""

    @vaekit.hookimpl
    def register_models(self, register):
        class Offset(VAE):
            def __init__(self, config, components, offset: float = 1000.0):
                super().__init__(config, components)
                self.offset = offset
                self.calls = 0

            def forward(self, x, y=None, beta=1.0, free_bits=0.0):
                self.calls += 1
                objective = super().forward(x, y, beta, free_bits)
                return Objective(objective.loss + self.offset, *objective[1:])

        register("offset", Offset)


def test_a_kind_owns_its_objective_and_takes_options(tmp_path):
    with registered(OffsetKind(), "offset-kind"):
        plain = train_tiny(tmp_path / "a", epochs=1).history[0]
        offset = train_tiny(
            tmp_path / "b", epochs=1, kind="offset", kind_options={"offset": 500.0}
        ).history[0]
        loaded = open_run(tmp_path / "b" / "runs" / "tiny")
        assert loaded.config.model.kind_options == {"offset": 500.0}
        assert loaded.model.offset == 500.0 and loaded.num_classes == 0  # not conditional
    assert offset["loss"] == pytest.approx(plain["loss"] + 500.0, rel=1e-4)
    assert offset["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-4)  # the ELBO


class WidthEncoder:
    """A third party's encoder whose ``width`` default a later release changes."""

    default_width = 8

    @vaekit.hookimpl
    def register_encoders(self, register):
        default = self.default_width

        class Flat(torch.nn.Module):
            def __init__(self, input_shape, width=default, scale=None):
                super().__init__()
                self.net = torch.nn.Linear(int(torch.tensor(input_shape).prod()), width)
                self.out_features = width

            def forward(self, x):
                return self.net(x.flatten(1))

        register("flat", Flat)


def test_a_run_keeps_the_option_defaults_it_was_built_with(tmp_path):
    """The config records the defaults the user left out (plain values: None too), so a
    plugin release that changes a default does not break the runs made before it."""
    old, new = WidthEncoder(), WidthEncoder()
    new.default_width = 32
    with registered(old, "width-encoder"):
        run = train_tiny(tmp_path, epochs=1, encoder="flat", encoder_options={}, decoder="mlp").run
    saved = json.loads(run.config_path.read_text())["model"]
    assert saved["encoder_options"] == {"width": 8, "scale": None}
    assert saved["decoder_options"] == {"hidden": 32, "depth": 2}  # hidden given, depth not
    assert saved["likelihood_options"] == {"sigma": 0.1, "learn_sigma": False}
    with registered(new, "width-encoder"):
        loaded = open_run(run.path)  # strict weight load: width 32 would not fit
        assert loaded.model.encoder.out_features == 8
        assert loaded.model.elbo(torch.rand(2, 1, 8, 8)).neg_elbo.shape == (2,)


class RangedEncoder:
    """A third party's encoder that declares its options' ranges with ``option_ranges``,
    from docs/plugins.md alone (a ``**kwargs``-free class with a float and an int)."""

    @vaekit.hookimpl
    def register_encoders(self, register):
        from vaekit.options import option_ranges

        @option_ranges(width=(2, 16), dropout=(0.0, 0.5))
        class Ranged(torch.nn.Module):
            def __init__(self, input_shape, width: int = 8, dropout: float = 0.0):
                super().__init__()
                self.net = torch.nn.Linear(int(torch.tensor(input_shape).prod()), width)
                self.drop = torch.nn.Dropout(dropout)
                self.out_features = width

            def forward(self, x):
                return self.drop(self.net(x.flatten(1)))

        register("ranged", Ranged)


def test_a_plugins_declared_option_ranges_are_enforced_before_anything_is_written(tmp_path):
    with registered(RangedEncoder(), "ranged-encoder"):
        for options, message in (
            ({"width": 17}, "encoder 'ranged' option 'width' must be from 2 to 16, got 17"),
            ({"dropout": 0.9}, "encoder 'ranged' option 'dropout' must be from 0 to 0.5"),
            ({"dropout": float("nan")}, "encoder 'ranged' option 'dropout' must be finite"),
        ):
            with pytest.raises(UsageError, match=message):
                train_tiny(tmp_path, encoder="ranged", encoder_options=options, decoder="mlp")
            assert not (tmp_path / "runs").exists()
        run = train_tiny(
            tmp_path, epochs=1, encoder="ranged", encoder_options={"width": 16}, decoder="mlp"
        ).run
        assert run.weights_path.is_file()  # the edge of the range is inside it


def test_a_kinds_misspelt_option_is_a_usage_error(tmp_path):
    with registered(OffsetKind(), "offset-kind"):
        with pytest.raises(UsageError, match="model 'offset' has no option 'ofset'"):
            train_tiny(tmp_path, kind="offset", kind_options={"ofset": 1})


class RaisingPrior:
    @vaekit.hookimpl
    def register_priors(self, register):
        def picky(latent_dim, scale: float = 1.0):
            raise UsageError(f"prior 'picky' needs scale > 0, got {scale}")

        register("picky", picky)


def test_a_plugins_usage_error_is_one_line_with_exit_code_2(tmp_path):
    with registered(RaisingPrior(), "picky"):
        result = runner.invoke(
            app, ["train", "--prior", "picky", "--runs-dir", str(tmp_path), "--epochs", "1"]
        )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: prior 'picky' needs scale > 0, got 1.0"]


def test_a_name_clash_is_listed_and_fails_only_commands_that_use_it(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_fake_distribution(
        site,
        "vaekit-clash",
        "vaekit_clash",
        """
        import vaekit

        @vaekit.hookimpl
        def register_priors(register):
            register("normal", object)
        """,
        version="2.0",
    )
    env = dict(os.environ, PYTHONPATH=str(site), COLUMNS="200")
    listing = subprocess.run(
        [vaekit_command(), "plugins", "--json"], capture_output=True, text=True, env=env
    )
    assert listing.returncode == 0, listing.stderr
    conflicts = json.loads(listing.stdout)["conflicts"]
    assert [(c["family"], c["name"]) for c in conflicts] == [("priors", "normal")]
    assert "vaekit-clash 2.0" in conflicts[0]["error"]
    base = [vaekit_command(), "train", "-z", "2", "--epochs", "1", "--encoder", "mlp"]
    clashed = subprocess.run(base, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert clashed.returncode == 1
    assert clashed.stderr.strip().startswith("Error: prior 'normal' is registered by two")
    assert "Traceback" not in clashed.stderr
    # a command that does not use the clashing name still works (the example plugin's prior)
    other = subprocess.run(
        [*base, "--prior", "mixture"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert other.returncode == 0, other.stderr


def old_layout(config: dict) -> dict:
    """config.json as vaekit 0.1.0 wrote it."""
    model = dict(config["model"])
    model["model"] = model.pop("kind")
    del model["kind_options"]
    for family in ("encoder", "decoder"):
        model[f"{family}_options"] = {  # the defaults of 0.1.0, which it did not write
            k: v for k, v in model[f"{family}_options"].items() if k not in ("arch", "norm")
        }
    train = dict(config["train"])
    for key in (
        "encoder",
        "encoder_options",
        "decoder",
        "decoder_options",
        "likelihood",
        "likelihood_options",
        "prior",
        "prior_options",
        "latent_dim",
    ):
        train[key] = model[key]
    train["model"] = model["model"]
    return {**config, "vaekit_version": "0.1.0", "model": model, "train": train}


def test_runs_written_by_vaekit_0_1_0_still_load(tmp_path):
    run = train_tiny(tmp_path, epochs=1).run
    new = json.loads(run.config_path.read_text())
    run.config_path.write_text(json.dumps(old_layout(new)))
    loaded = open_run(run.path)
    assert loaded.config.model.kind == "vae" and loaded.config.model.latent_dim == 4
    x = torch.rand(3, 1, 8, 8)
    assert loaded.model.elbo(x).neg_elbo.shape == (3,)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda c: c["model"].update(latent_dim="16"), "latent_dim must be an integer"),
        (lambda c: c["model"].update(input_shape=[8, 8]), "input_shape must have 3 entries"),
        (lambda c: c["train"].update(lr="fast"), "train.lr must be a number"),
        (lambda c: c["model"].update(colour=True), "unknown keys ['colour']"),
        (lambda c: c.pop("train"), "'train' is missing"),
        (lambda c: c["model"].update(latent_dim=5), "has shape (32, 4), the config builds (32, 5)"),
    ],
)
def test_damaged_run_directories_are_one_line_data_errors(tmp_path, damage, fragment):
    run = train_tiny(tmp_path, epochs=1).run
    config = json.loads(run.config_path.read_text())
    damage(config)
    run.config_path.write_text(json.dumps(config))
    with pytest.raises(DataError) as caught:
        open_run(run.path)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    result = runner.invoke(app, ["sample", "--model", str(run.path), "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 1 and fragment in result.output


class CountingPrior:
    """N(5, I) whose ``sample`` counts its calls: every prior draw must come through it."""

    calls: list[int] = []

    @vaekit.hookimpl
    def register_priors(self, register):
        import math

        calls = self.calls

        class Counting(torch.nn.Module):
            def __init__(self, latent_dim):
                super().__init__()
                self.d = latent_dim

            def log_prob(self, z):
                return (-0.5 * (z - 5).square() - 0.5 * math.log(2 * math.pi)).sum(-1)

            def sample(self, n, generator=None):
                calls.append(n)
                return 5 + torch.randn(n, self.d, generator=generator)

        register("counting", Counting)


def test_grids_and_interpolation_ends_draw_through_prior_sample(tmp_path):
    from vaekit.generate import endpoint_latent, interpolate

    CountingPrior.calls.clear()
    with registered(CountingPrior(), "counting"):
        run = train_tiny(tmp_path, epochs=1, prior="counting").run
        assert CountingPrior.calls == [64]  # samples.png
        loaded = open_run(run.path)
        end = endpoint_latent(loaded, "prior:7")
        assert end.shape == (4,) and abs(float(end.mean()) - 5) < 2.5
        np_equal = (endpoint_latent(loaded, "prior:7") == end).all()
        assert np_equal  # seeded
        walk = interpolate(loaded, "prior:1", "prior:2", steps=3)
        assert walk.images.shape == (5, 1, 8, 8)
        assert CountingPrior.calls[1:] == [1, 1, 1, 1]


def test_a_broken_plugin_warns_in_one_clean_line(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_fake_distribution(site, "vaekit-broken", "vaekit_broken", "import not_a_module\n")
    env = dict(os.environ, PYTHONPATH=str(site), COLUMNS="80")
    done = subprocess.run(
        [vaekit_command(), "plugins", "--json"], capture_output=True, text=True, env=env
    )
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("warning: vaekit plugin 'vaekit_broken' (from vaekit-broken)")


def test_no_module_level_import_cycle():
    import ast
    from pathlib import Path

    root = Path(vaekit.__file__).parent
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vaekit"):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {d for d in deps if d in names and d != name}

    def visit(name, trail):
        assert name not in trail, f"import cycle: {' -> '.join([*trail, name])}"
        for dep in graph[name]:
            visit(dep, [*trail, name])

    for name in graph:
        visit(name, [])


def test_a_kind_with_an_extra_network_gets_its_own_optimiser_checkpointed(tmp_path):
    with registered(CriticKind(through=False), "critic-kind"):
        plain = train_tiny(tmp_path / "a", epochs=2).history
        result = train_tiny(tmp_path / "b", epochs=1, kind="with-critic")
        state = result.run.load_checkpoint()
        assert set(state["extra_optimizers"]) == {"critic"}
        resumed = train(tiny_config(tmp_path / "b", epochs=2, kind="with-critic"), resume=True)
        loaded = open_run(resumed.run.path)
        torch.manual_seed(0)
        with torch.random.fork_rng():
            initial = build_model(loaded.config.model)
        # the critic learned towards its target (its own loss, its own optimiser) ...
        x = torch.rand(256, 1, 8, 8).flatten(1)
        with torch.no_grad():
            before = float((initial.critic(x) - 3.0).square().mean())
            after = float((loaded.model.critic(x) - 3.0).square().mean())
        assert after < 0.8 * before
        # ... and its loss, summed over the steps apart from the VAE's, is in every epoch's
        # log and falls as it learns
        critic = [r["critic_loss"] for r in resumed.history]
        assert len(critic) == 2 and all(math.isfinite(c) and c > 0 for c in critic)
        assert critic[1] < critic[0]
    # ... while the VAE trains as without it (the critic's loss never reaches the decoder;
    # float sums in another order leave differences of ~1e-5)
    ours, theirs = [r["loss"] for r in resumed.history], [r["loss"] for r in plain]
    assert ours == pytest.approx(theirs, rel=1e-3)


@pytest.mark.parametrize("encoder", ["conv", "resnet"])
def test_conv_and_resnet_runs_of_vaekit_0_1_0_load_their_old_architecture(tmp_path, encoder):
    options = {"arch": 1, "width": 8, **({"norm": "batch"} if encoder == "resnet" else {})}
    run = train_tiny(
        tmp_path, epochs=1, encoder=encoder, encoder_options=options, decoder_options=options
    ).run
    new = json.loads(run.config_path.read_text())
    run.config_path.write_text(json.dumps(old_layout(new)))  # no arch: 0.1.0 had none
    loaded = open_run(run.path)
    recorded = new["model"]["encoder_options"]  # the given options and the other defaults
    assert (
        loaded.config.model.encoder_options
        == loaded.config.model.decoder_options
        == {
            **recorded,
            **options,
        }
    )
    assert loaded.model.elbo(torch.rand(2, 1, 8, 8)).neg_elbo.shape == (2,)


@pytest.mark.parametrize("version", ["0.2.1", "0.3.0"])
def test_resnet_runs_of_vaekit_0_2_and_0_3_load_arch_2(tmp_path, version):
    """0.4 changed the resnet defaults (arch 3, LayerNorm); a run that named neither keeps
    what its version built (arch 2, BatchNorm)."""
    options = {"arch": 2, "norm": "batch", "width": 8}
    run = train_tiny(
        tmp_path,
        epochs=1,
        image_size=24,  # two stride-2 stages (24, 12, 6): with one, arch 2 and 3 coincide
        encoder="resnet",
        encoder_options=options,
        decoder_options=options,
    ).run
    config = json.loads(run.config_path.read_text())
    config["vaekit_version"] = version
    for family in ("encoder", "decoder"):
        config["model"][f"{family}_options"] = {"width": 8}
    run.config_path.write_text(json.dumps(config))
    loaded = open_run(run.path)  # strict load: arch 3's extra norm would not fit the weights
    pinned = {"arch": 2, "norm": "batch", "width": 8}
    assert loaded.config.model.encoder_options == loaded.config.model.decoder_options == pinned
    assert loaded.model.elbo(torch.rand(2, 1, 24, 24)).neg_elbo.shape == (2,)
    # today's runs are not pinned: resnet without arch builds arch 3, conv keeps 2
    config["vaekit_version"] = "0.4.0"
    for family in ("encoder", "decoder"):
        config["model"][f"{family}_options"] = {"width": 8}
    run.config_path.write_text(json.dumps(config))
    with pytest.raises(DataError, match="does not match its config"):
        open_run(run.path)


class DecliningKLPrior(torch.nn.Module):
    """N(3, 0.5²) per dimension, far from N(0, I), whose ``kl`` declines every call (returns
    None: "no closed form for this call"), so the core must use its Monte Carlo estimate."""

    calls = 0

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z):
        return torch.distributions.Normal(3.0, 0.5).log_prob(z).sum(-1)

    def sample(self, n, generator=None):
        return 3.0 + 0.5 * torch.randn(n, self.latent_dim, generator=generator)

    def kl(self, posterior):
        DecliningKLPrior.calls += 1
        return None


class DecliningKLPlugin:
    @vaekit.hookimpl
    def register_priors(self, register):
        register("declining-kl", DecliningKLPrior)


def test_a_prior_whose_kl_returns_none_gets_the_monte_carlo_kl(tmp_path):
    from vaekit.evaluate import evaluate
    from vaekit.model import kl_divergence
    from vaekit.posterior import DiagonalGaussian

    prior = DecliningKLPrior(2)
    q = DiagonalGaussian(torch.tensor([[3.0, 2.0]]), torch.tensor([[-2.0, -1.0]]))
    z = torch.tensor([[3.1, 2.5]])
    expected = q.log_prob(z) - prior.log_prob(z)
    assert torch.allclose(kl_divergence(prior, q, z), expected[:, None])
    DecliningKLPrior.calls = 0
    with registered(DecliningKLPlugin(), "declining-kl"):
        run_dir = train_tiny(tmp_path, prior="declining-kl", epochs=1).run.path
        assert DecliningKLPrior.calls > 0  # asked on every step, declined, estimated instead
        result = evaluate(run_dir, iwae_k=2)
    assert result.kl_per_dim is None  # one Monte Carlo column: no split by dimension
    assert torch.isfinite(torch.tensor([result.kl, result.neg_elbo, result.iwae[2]])).all()


class SplitReadingSource:
    """A third party's dataset whose ``load`` accepts ``splits``: it records what it was
    asked for and leaves the other split's images out, as the contract allows."""

    asked: list = []

    @staticmethod
    def detect(path) -> bool:
        return False

    @staticmethod
    def load(path, splits: tuple[str, ...] | None = None):
        import numpy as np

        from vaekit.dataset import SPLITS, ImageDataset

        SplitReadingSource.asked.append(splits)
        own = {"train": np.arange(0, 40), "test": np.arange(40, 50)}
        keep = np.concatenate([own.get(s, []) for s in (splits or own)]).astype(int)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (50, 1, 4, 4), dtype=np.uint8)[keep]
        split = np.array([SPLITS.index("train")] * 40 + [SPLITS.index("test")] * 10)[keep]
        return ImageDataset(
            images=images,
            ids=np.array([str(i) for i in keep]),
            source="split-reader",
            location=str(path),
            split=split.astype(np.uint8),
        )


class SplitReadingPlugin:
    @vaekit.hookimpl
    def register_datasets(self, register):
        register("split-reader", SplitReadingSource)


def test_a_third_party_dataset_is_asked_only_for_the_splits_a_command_takes(tmp_path):
    """The ``splits`` keyword of a dataset's ``load`` (hookspecs): a command taking one
    split names the dataset's own splits it needs (validation rows come from train), and
    the rows it gets are those of a whole read."""
    from vaekit.data import load_dataset

    SplitReadingSource.asked.clear()
    with registered(SplitReadingPlugin(), "split-reader"):
        whole = load_dataset(tmp_path, "split-reader").with_splits(0.25, seed=0)
        for split, asked in (("test", ("test",)), ("val", ("train", "val")), ("train", ("train",))):
            part = load_dataset(tmp_path, "split-reader", split=split).with_splits(0.25, seed=0)
            assert SplitReadingSource.asked[-1] == asked
            assert list(part.select_split(split).ids) == list(whole.select_split(split).ids)
    assert SplitReadingSource.asked[0] is None  # a whole read names none
