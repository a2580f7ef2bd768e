"""`vaekit plugins show NAME`: every component's options are declared, typed and helped,
in its factory's signature (``Annotated[T, "help"]``, ``Literal[...]``)."""

from __future__ import annotations

import importlib.util
import json
import math
from typing import Annotated, Literal

from torch import Tensor, nn
from typer.testing import CliRunner

import vaekit
from tests.helpers import registered
from vaekit.cli import app
from vaekit.plugins import FAMILIES, describe_component, get_plugin_host

runner = CliRunner()

#: Options let off the help rule (none: every option declares its help).
NO_HELP_YET: set[tuple[str, str, str]] = set()


def flat(text: str) -> str:
    """``text`` with every run of whitespace one space (rich wraps long lines)."""
    return " ".join(text.split())


def table_rows(output: str) -> dict[str, list[str]]:
    """The options table of ``vaekit plugins show`` as ``{option: [type, default, range,
    help]}``, each cell's wrapped lines joined again."""
    rows: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            current = rows.setdefault(cells[0], ["", "", "", ""])
        if current is not None:
            for i, cell in enumerate(cells[1:]):
                current[i] = f"{current[i]} {cell}".strip()
    return rows


def every_component() -> list[tuple[str, str]]:
    host = get_plugin_host()
    return [(family, name) for family in FAMILIES for name in host.names(family)]


def test_every_option_of_every_component_has_help_and_a_type():
    missing, untyped = [], []
    for family, name in every_component():
        (component,) = describe_component(name, family)
        for option in component.options or []:
            where = (family, name, option.name)
            if not option.help and where not in NO_HELP_YET:
                missing.append(f"{family} {name}: {option.name} ({component.plugin})")
            if option.type in ("any", "") or "Annotated" in option.type:
                untyped.append(f"{family} {name}: {option.name} is {option.type!r}")
    assert not missing, "options without Annotated[T, 'help']: " + "; ".join(missing)
    assert not untyped, "; ".join(untyped)


def test_the_checked_families_hold_builtins_and_the_zoo():
    host = get_plugin_host()
    assert {"mlp", "conv", "resnet"} <= set(host.names("encoders"))
    assert {"gaussian", "bernoulli", "laplace"} <= set(host.names("likelihoods"))
    assert {"constant", "warmup", "sigmoid", "cyclical"} <= set(host.names("kl_schedules"))
    assert {"cpu", "cuda"} <= set(host.names("accelerators"))
    assert {"vae", "cvae"} <= set(host.names("models"))
    if importlib.util.find_spec("vaekit_zoo") is not None:  # `make test` installs it
        assert "mog" in host.names("priors") and "vamp" in host.names("models")
        assert {"dmol", "cat256"} <= set(host.names("likelihoods"))


def test_components_without_options_say_none_not_any():
    # nn.Module's own __init__ takes **kwargs: a likelihood without options declares none
    (bernoulli,) = describe_component("bernoulli", "likelihoods")
    assert bernoulli.options == []


def test_resnet_lists_width_with_type_default_range_and_help():
    result = runner.invoke(app, ["plugins", "show", "resnet", "--family", "encoder"])
    assert result.exit_code == 0, result.output
    assert "encoder resnet" in result.output
    rows = table_rows(result.output)
    assert rows["width"] == [
        "int",
        "32",
        "1 to 4096",
        "channels of the first stage; doubled each stage, at most 4x",
    ]
    assert rows["norm"][:2] == ['"batch" | "layer" | "identity"', "layer"]  # its Literal
    assert all(help_text for *_, help_text in rows.values())


def test_show_json_parses_and_holds_both_families():
    result = runner.invoke(app, ["plugins", "show", "resnet", "--json"])
    assert result.exit_code == 0, result.output
    found = {c["family"]: c for c in json.loads(result.output)}
    assert set(found) == {"encoder", "decoder"}
    width = next(o for o in found["encoder"]["options"] if o["name"] == "width")
    assert width["type"] == "int" and width["default"] == 32 and width["range"] == [1, 4096]
    assert width["help"] and not width["required"]


def test_show_an_unknown_name_exits_2_listing_the_names():
    result = runner.invoke(app, ["plugins", "show", "resnt"])
    assert result.exit_code == 2
    text = flat(result.output)
    assert "no component named 'resnt'" in text and "resnet" in text and "warmup" in text


# -- a third party's component declares its options the same way -------------------------


class PickyEncoder(nn.Module):
    """Flatten, one linear layer; ``mode`` picks its activation."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        features: Annotated[int, "units of the one layer"] = 8,
        mode: Annotated[Literal["silu", "tanh"], "the activation after it"] = "silu",
    ):
        super().__init__()
        activation = nn.SiLU() if mode == "silu" else nn.Tanh()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), features), activation
        )
        self.out_features = features

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PickyPlugin:
    @vaekit.hookimpl
    def register_encoders(self, register):
        register("picky", PickyEncoder)


def test_a_third_party_component_shows_its_annotated_and_literal_options():
    with registered(PickyPlugin(), "picky-plugin"):
        result = runner.invoke(app, ["plugins", "show", "picky"])
    assert result.exit_code == 0, result.output
    assert "encoder picky (picky-plugin)" in result.output
    rows = table_rows(result.output)
    assert rows["features"] == ["int", "8", "", "units of the one layer"]
    assert rows["mode"] == ['"silu" | "tanh"', "silu", "", "the activation after it"]


def test_a_third_party_literal_refuses_another_value_on_the_command_line(tmp_path):
    args = ["train", "--encoder", "picky", "--decoder", "mlp", "--runs-dir", str(tmp_path)]
    with registered(PickyPlugin(), "picky-plugin"):
        result = runner.invoke(app, [*args, "--encoder-opt", "mode=relu"])
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "encoder 'picky' option 'mode' must be one of 'silu', 'tanh'" in text
    assert "got 'relu'" in text
    assert not any(tmp_path.iterdir())


def test_a_third_party_literal_value_it_lists_is_accepted():
    with registered(PickyPlugin(), "picky-plugin"):
        encoder = get_plugin_host().create("encoders", "picky", (1, 4, 4), mode="tanh")
    assert isinstance(encoder.net[-1], nn.Tanh)
