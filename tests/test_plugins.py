"""The plugin spine: built-ins, entry points, unknown names, conflicts, broken plugins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings

import pytest

import vaekit
from tests.helpers import registered, write_fake_distribution
from vaekit import plugins
from vaekit.errors import ContractError, PluginConflictError, UnknownComponentError, VaekitError
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


def _set_mtime(path, seconds_ago):
    stamp = time.time() - seconds_ago
    os.utime(path, (stamp, stamp))


def test_entry_points_are_cached_until_a_distribution_is_installed_or_removed(site, monkeypatch):
    monkeypatch.setattr(plugins, "RACY_SECONDS", 0.0)  # other sys.path folders may be new
    write_fake_distribution(site, "fake-good", "fake_good", GOOD_PLUGIN, version="2.5")
    _set_mtime(site, 100)
    names = {e.name: e for e in plugins.entry_points()}
    assert names["fake_good"].distribution == "fake-good" and names["fake_good"].version == "2.5"
    assert list(plugins._entry_point_cache_file().parent.glob("entry-points-*.json"))

    scan = plugins._scan_entry_points
    monkeypatch.setattr(plugins, "_scan_entry_points", lambda: pytest.fail("not cached"))
    assert "fake_good" in {e.name for e in plugins.entry_points()}
    assert PluginHost().plugins["fake_good"].status == "ok"  # loaded from the cached entry

    monkeypatch.setattr(plugins, "_scan_entry_points", scan)
    write_fake_distribution(
        site, "fake-other", "fake_other", GOOD_PLUGIN.replace("thirdparty", "x")
    )
    _set_mtime(site, 90)
    assert {"fake_good", "fake_other"} <= {e.name for e in plugins.entry_points()}
    shutil.rmtree(site / "fake_good-2.5.dist-info")
    _set_mtime(site, 80)
    names = {e.name for e in plugins.entry_points()}
    assert "fake_other" in names and "fake_good" not in names


def test_a_tampered_entry_point_cache_cannot_choose_code(site, monkeypatch, tmp_path):
    """Whoever can write the cache folder cannot make vaekit import a module: a cached
    entry point that no installed distribution declares makes the cache ignored and
    rebuilt."""
    monkeypatch.setattr(plugins, "RACY_SECONDS", 0.0)
    write_fake_distribution(site, "fake-good", "fake_good", GOOD_PLUGIN, version="2.5")
    _set_mtime(site, 100)
    plugins.entry_points()
    cache = plugins._entry_point_cache_file()
    saved = json.loads(cache.read_text())
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "evil_module.py").write_text("import sys\nsys.modules['evil_ran'] = True\n")
    monkeypatch.syspath_prepend(str(planted))
    _set_mtime(planted, 100)
    cache = plugins._entry_point_cache_file()  # sys.path changed: its own cache file
    fake_meta = planted / "evil-1.dist-info"
    fake_meta.mkdir()
    (fake_meta / "entry_points.txt").write_text("[console_scripts]\nevil = evil_module\n")
    _set_mtime(planted, 100)
    declared = saved["entry_points"][0][4]
    for forged in (
        ["evil", "evil_module", "fake-good", "2.5", declared],  # not in that file
        ["evil", "evil_module", "evil", "1", str(tmp_path / "entry_points.txt")],  # off sys.path
        ["evil", "evil_module", "evil", "1", str(fake_meta / "entry_points.txt")],  # other value
        ["evil", "evil_module", "evil", "1", ""],
    ):
        stamps = plugins._path_stamps()
        entries = [*saved["entry_points"], forged]
        cache.write_text(json.dumps({**saved, "stamps": stamps, "entry_points": entries}))
        names = {e.name for e in plugins.entry_points()}
        assert "evil" not in names and "fake_good" in names, forged
        PluginHost()
        assert "evil_ran" not in sys.modules
        rebuilt = json.loads(cache.read_text())
        assert all(e[0] != "evil" for e in rebuilt["entry_points"])  # rebuilt from the scan


def test_entry_points_are_not_cached_while_a_folder_may_still_change(site):
    write_fake_distribution(site, "fake-good", "fake_good", GOOD_PLUGIN)  # site: just now
    assert "fake_good" in {e.name for e in plugins.entry_points()}
    assert not list(plugins._entry_point_cache_file().parent.glob("entry-points-*.json"))


def test_entry_point_values_load_like_importlib_metadata():
    point = plugins.EntryPoint("x", "vaekit.builtin.nets.mlp : MLPEncoder [extra]")
    assert point.load().__name__ == "MLPEncoder"
    assert (
        plugins.EntryPoint("x", "vaekit.builtin.priors").load().__name__ == "vaekit.builtin.priors"
    )
    with pytest.raises(ValueError, match="malformed"):
        plugins.EntryPoint("x", "not valid!").load()


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


def test_only_the_newest_entry_point_caches_are_kept(tmp_path):
    for i in range(plugins.KEEP_ENTRY_POINT_CACHES + 5):
        old = tmp_path / f"entry-points-{i:08x}.json"
        old.write_text("{}")
        _set_mtime(old, 1000 - i)  # the higher i, the newer
    (tmp_path / "celeba-cache.npy").write_text("not ours")
    plugins._prune_entry_point_caches(tmp_path)
    kept = sorted(p.name for p in tmp_path.glob("entry-points-*.json"))
    newest = range(5, 5 + plugins.KEEP_ENTRY_POINT_CACHES)
    assert kept == [f"entry-points-{i:08x}.json" for i in newest]
    assert (tmp_path / "celeba-cache.npy").exists()


def test_listing_plugins_imports_no_torch():
    """``vaekit plugins`` (table and --json) lists every component, the example's and the
    zoo's included, without importing torch or numpy: components are registered by
    import path and imported when first used."""
    code = (
        "import io, sys, contextlib, json\n"
        "from vaekit.cli import main\n"
        "for args in (['plugins'], ['plugins', '--json']):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        main(args)\n"
        "listed = json.loads(out.getvalue())['components']\n"
        "assert {'resnet', 'linear'} <= set(listed['encoders']), listed\n"
        "assert 'mog' in listed['priors'] and 'normal' in listed['priors'], listed\n"
        "heavy = [m for m in ('torch', 'numpy', 'h5py', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class LazyPlugin:
    """Registers by import path: one that imports, one that does not, one malformed."""

    def __init__(self, path: str):
        self.path = path

    @vaekit.hookimpl
    def register_encoders(self, register):
        register("lazy-one", self.path)


def test_a_factory_registered_by_path_is_imported_when_first_used():
    host = get_plugin_host()
    with registered(LazyPlugin("vaekit.builtin.nets.mlp:MLPEncoder"), "lazy-ok"):
        component = host.get("encoders", "lazy-one")
        assert component.lazy
        from vaekit.builtin.nets.mlp import MLPEncoder

        assert component.factory is MLPEncoder and not component.lazy
        built = host.create("encoders", "lazy-one", (1, 8, 8), hidden=8)
        assert built.out_features == 8


def test_a_path_that_does_not_import_is_one_line_naming_the_plugin():
    host = get_plugin_host()
    with registered(LazyPlugin("vaekit_nowhere.nets:Encoder"), "lazy-missing"):
        with pytest.raises(ContractError, match="plugin 'lazy-missing' names 'vaekit_nowhere"):
            host.create("encoders", "lazy-one", (1, 8, 8))


def test_a_malformed_path_is_refused_when_registered():
    host = get_plugin_host()
    with registered(LazyPlugin("not a path"), "lazy-bad"):
        with pytest.warns(VaekitPluginWarning, match="'package.module:attribute'"):
            names = host.names("encoders")  # the plugin is skipped as broken; vaekit goes on
        assert "lazy-one" not in names and "mlp" in names
