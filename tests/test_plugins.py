"""The plugin spine: built-ins, entry points, unknown names, conflicts, broken plugins."""

from __future__ import annotations

import sys
import warnings

import pytest

import vaekit
from tests.helpers import write_fake_distribution
from vaekit.errors import PluginConflictError, UnknownComponentError, VaekitError
from vaekit.plugins import FAMILIES, PluginHost, VaekitPluginWarning, get_plugin_host

GOOD_PLUGIN = """
import vaekit

@vaekit.hookimpl
def register_encoders(register):
    from vaekit.builtin.nets.mlp import MLPEncoder
    register("thirdparty", MLPEncoder)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for name in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[name]


def test_builtins_register_every_family():
    host = PluginHost(entry_points=False)
    expected = {
        "encoders": {"mlp", "conv", "resnet"},
        "decoders": {"mlp", "conv", "resnet"},
        "likelihoods": {"gaussian", "bernoulli", "laplace"},
        "priors": {"normal"},
        "kl_schedules": {"constant", "warmup", "sigmoid", "cyclical"},
        "accelerators": {"cpu", "cuda"},
        "models": {"vae"},
    }
    for family in FAMILIES:
        assert expected.get(family, set()) <= set(host.names(family)), family
    assert host.get("encoders", "resnet").plugin == "vaekit.builtin.networks"
    assert all(info.builtin for info in host.plugins.values())


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownComponentError) as caught:
        PluginHost(entry_points=False).get("encoders", "resnt")
    message = str(caught.value)
    assert "unknown encoder 'resnt'" in message
    assert "did you mean 'resnet'" in message
    assert "conv, mlp, resnet" in message
    assert caught.value.exit_code == 2


def test_unknown_option_lists_accepted_ones():
    with pytest.raises(VaekitError, match="has no option 'widht'; it accepts: input_shape"):
        get_plugin_host().create("encoders", "conv", widht=3)
    with pytest.raises(VaekitError, match="it accepts: width"):
        get_plugin_host().create("encoders", "conv", (1, 8, 8), widht=3)


def test_entry_point_plugin_is_discovered_with_its_distribution(site):
    write_fake_distribution(site, "fake-good", "fake_good", GOOD_PLUGIN, version="2.5")
    host = PluginHost()
    info = host.plugins["fake_good"]
    assert (info.distribution, info.version, info.status) == ("fake-good", "2.5", "ok")
    assert info.hooks == ["register_encoders"]
    assert host.get("encoders", "thirdparty").plugin == "fake_good"


def test_plugin_that_fails_to_import_is_reported_and_the_rest_works(site):
    write_fake_distribution(site, "fake-broken", "fake_broken", "raise RuntimeError('boom')\n")
    write_fake_distribution(site, "fake-good", "fake_good", GOOD_PLUGIN)
    with pytest.warns(VaekitPluginWarning, match="'fake_broken' .*fake-broken.*boom"):
        host = PluginHost()
    assert host.plugins["fake_broken"].status == "broken"
    assert "thirdparty" in host.names("encoders")
    assert "resnet" in host.names("encoders")


def test_misspelt_hook_marks_plugin_broken_and_rolls_it_back(site):
    source = GOOD_PLUGIN + "\n@vaekit.hookimpl\ndef register_encoderz(register):\n    pass\n"
    write_fake_distribution(site, "fake-typo", "fake_typo", source)
    with pytest.warns(VaekitPluginWarning, match="register_encoderz"):
        host = PluginHost()
    assert host.plugins["fake_typo"].status == "broken"
    assert "thirdparty" not in host.names("encoders")


def test_strict_mode_turns_broken_plugins_into_errors(site, monkeypatch):
    write_fake_distribution(site, "fake-broken", "fake_broken", "raise ImportError('nope')\n")
    monkeypatch.setenv("VAEKIT_STRICT_PLUGINS", "1")
    with pytest.raises(VaekitError, match="fake_broken"):
        PluginHost()


def test_registration_hook_that_raises_is_rolled_back():
    class Faulty:
        @vaekit.hookimpl
        def register_encoders(self, register):
            register("half", object)
            raise ValueError("bad registration")

    host = PluginHost(entry_points=False)
    host.add_plugin(Faulty(), "faulty", "faulty-dist", "0.1")
    with pytest.warns(VaekitPluginWarning, match="register_encoders failed"):
        names = host.names("encoders")
    assert "half" not in names and "resnet" in names
    assert host.plugins["faulty"].status == "broken"


def test_a_name_two_plugins_register_fails_only_where_it_is_used():
    class Clash:
        @vaekit.hookimpl
        def register_encoders(self, register):
            register("conv", object)

    host = PluginHost(entry_points=False)
    host.add_plugin(Clash(), "clash", "clash-dist", "0.3")
    assert "conv" in host.names("encoders")  # listed, so `vaekit plugins` can show it
    assert host.get("encoders", "resnet").plugin == "vaekit.builtin.networks"  # others work
    with pytest.raises(PluginConflictError) as caught:
        host.get("encoders", "conv")
    message = str(caught.value)
    assert "vaekit.builtin.networks" in message and "clash" in message
    assert "clash-dist 0.3" in message
    assert host.conflicts["encoders"] == {"conv": message}


def test_removed_plugin_disappears_from_registries():
    class Extra:
        @vaekit.hookimpl
        def register_priors(self, register):
            register("extra", object)

    host = get_plugin_host()
    host.add_plugin(Extra(), "extra")
    try:
        assert "extra" in host.names("priors")
    finally:
        host.remove_plugin("extra")
    assert "extra" not in host.names("priors")


def test_hookimpl_is_exported_from_the_package_root():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vaekit.hookimpl.project_name == "vaekit"
