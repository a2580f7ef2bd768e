"""Shared fixtures: a fresh plugin host per test, small thread counts, tiny runs."""

from __future__ import annotations

import pytest
import torch

from vaekit.plugins import reset_plugin_host

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def fresh_plugin_host():
    """Every test starts (and ends) with a plugin host built anew."""
    reset_plugin_host()
    yield
    reset_plugin_host()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Decode caches go to a per-test temporary folder, never the user's cache."""
    monkeypatch.setenv("VAEKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
