"""A seeded fuzzer of the files vaekit reads from elsewhere (issue 19): latent stores,
cluster files, run configs and IDX headers, crafted by mutating valid ones. Every case
must either load or raise a :class:`~vaekit.errors.VaekitError` (one line and a
documented exit code at the CLI), never another exception, and never allocate what a
crafted header declares (tracemalloc's peak stays small)."""

from __future__ import annotations

import copy
import gzip
import json
import random
import struct
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.helpers import train_tiny
from vaekit.cluster import Cluster, fit_cluster
from vaekit.encode import encode_dataset
from vaekit.errors import VaekitError
from vaekit.runs import Run
from vaekit.sources.idx import read_idx
from vaekit.store import LatentStore

#: no case may allocate more than this (a crafted header declares gigabytes)
PEAK_BYTES = 256 << 20


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    run = train_tiny(root, epochs=1).run.path
    store = encode_dataset(None, root / "latents.h5", model_dir=run)
    cluster = root / "three.json"
    fit_cluster(store, "3", output=cluster, components=2, gate=0)
    return {"run": run, "store": store, "cluster": cluster}


def _outcome(action) -> str:
    """Run ``action``: "ok" or "refused" (a VaekitError); anything else fails the test."""
    tracemalloc.start()
    try:
        action()
        return "ok"
    except VaekitError as exc:
        assert "\n" not in str(exc), str(exc)
        return "refused"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < PEAK_BYTES, f"peak {peak:,} bytes"


# -- latent stores -----------------------------------------------------------------------------

ROW_NAMES = ("mu", "logvar", "labels", "attributes", "ids", "split", "samples")
NAME_LISTS = ("class_names", "attribute_names", "split_names")


def _junk_array(rng: random.Random, n: int, d: int):
    kind = rng.choice(["1d", "3d", "strings", "ints", "bools", "short", "wide", "empty"])
    return {
        "1d": np.zeros(n, np.float32),
        "3d": np.zeros((n, d, 2), np.float32),
        "strings": np.array([[b"x"] * d] * n, dtype="S1"),
        "ints": np.arange(n * d).reshape(n, d),
        "bools": np.zeros((n, d), bool),
        "short": np.zeros((max(n - 3, 0), d), np.float32),
        "wide": np.zeros((n, d + 1), np.float32),
        "empty": np.zeros((0, d), np.float32),
    }[kind]


def _mutate_store(f: h5py.File, rng: random.Random) -> None:
    n, d = f["mu"].shape
    for _ in range(rng.randint(1, 3)):
        move = rng.choice(["replace", "delete", "attr", "declare", "names"])
        if move == "replace":
            name = rng.choice(ROW_NAMES)
            if name in f:
                del f[name]
            f.create_dataset(name, data=_junk_array(rng, n, d))
        elif move == "delete":
            name = rng.choice(ROW_NAMES + NAME_LISTS)
            if name in f:
                del f[name]
        elif move == "attr":
            key = rng.choice(["complete", "format", "format_version", "model_config"])
            f.attrs[key] = rng.choice(
                ["no", 1, 0, True, "{", "[]", '{"a": 1}', "vaekit-latents", 99, -1, "x" * 1000]
            )
        elif move == "declare":  # a chunked dataset that declares far more than it stores
            name = rng.choice(ROW_NAMES)
            if name in f:
                del f[name]
            rows = rng.choice([n, 10**9, 3 * 10**9])
            dims = rng.choice([d, 200_000, 1])
            shape = (rows,) if name in ("labels", "ids", "split") else (rows, dims)
            chunks = (1024,) if len(shape) == 1 else (1, min(dims, 1024))
            f.create_dataset(name, shape=shape, dtype="f4", chunks=chunks, compression="gzip")
        else:
            name = rng.choice(NAME_LISTS)
            if name in f:
                del f[name]
            f.create_dataset(name, data=rng.choice([np.arange(5), np.zeros((2, 2)), [b"a"] * 3]))


def _use_store(path: Path) -> None:
    with LatentStore.open(path) as store:
        store.describe()
        store.label_counts()
        store.read(slice(0, 10))
        if store.class_names:
            store.select([store.class_names[0]])


def test_crafted_latent_stores_load_or_are_refused(originals, tmp_path):
    rng = random.Random(0)
    outcomes = []
    for case in range(120):
        path = tmp_path / f"s{case}.h5"
        path.write_bytes(originals["store"].read_bytes())
        with h5py.File(path, "r+") as f:
            _mutate_store(f, rng)
        outcomes.append(_outcome(lambda p=path: _use_store(p)))
    assert outcomes.count("refused") > 60  # the mutations mostly break something


# -- cluster files -----------------------------------------------------------------------------


def _mutate_json(data, rng: random.Random, depth: int = 0):
    """A copy of ``data`` with one random edit somewhere inside."""
    data = copy.deepcopy(data)
    containers = [data]
    node = data
    while isinstance(node, (dict, list)) and node and rng.random() < 0.6:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        if isinstance(node[key], (dict, list)) and node[key]:
            node = node[key]
            containers.append(node)
        else:
            break
    target = containers[-1]
    if isinstance(target, dict) and target:
        key = rng.choice(list(target))
    elif isinstance(target, list) and target:
        key = rng.randrange(len(target))
    else:
        return data
    edit = rng.choice(["delete", "string", "nan", "huge", "negative", "list", "nest", "none"])
    if edit == "delete":
        del target[key]
    else:
        target[key] = {
            "string": "x",
            "nan": float("nan"),
            "huge": 10**12,
            "negative": -3,
            "list": [1, 2],
            "nest": [[[[1]]]],
            "none": None,
        }[edit]
    return data


def _mutated(original: dict, rng: random.Random) -> dict:
    """``original`` after one to three random edits."""
    data = original
    for _ in range(rng.randint(1, 3)):
        data = _mutate_json(data, rng)
    return data


def _use_cluster(path: Path) -> None:
    cluster = Cluster.load(path)
    cluster.sample(4, seed=0)


def test_crafted_cluster_files_load_or_are_refused(originals, tmp_path):
    rng = random.Random(1)
    original = json.loads(originals["cluster"].read_text())
    outcomes = []
    for case in range(150):
        path = tmp_path / f"c{case}.json"
        path.write_text(json.dumps(_mutated(original, rng)))
        outcomes.append(_outcome(lambda p=path: _use_cluster(p)))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    outcomes.append(_outcome(lambda: _use_cluster(deep)))
    assert outcomes[-1] == "refused" and outcomes.count("refused") > 50


# -- run configs -------------------------------------------------------------------------------


def test_crafted_run_configs_load_or_are_refused(originals, tmp_path):
    rng = random.Random(2)
    original = json.loads((originals["run"] / "config.json").read_text())
    outcomes = []
    for case in range(120):
        run = tmp_path / f"r{case}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps(_mutated(original, rng)))
        outcomes.append(_outcome(lambda r=run: Run(r).read_config()))
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "config.json").write_text("{" + '"a":{' * 40_000 + "}" * 40_001)
    outcomes.append(_outcome(lambda: Run(nested).read_config()))
    assert outcomes[-1] == "refused" and outcomes.count("refused") > 30


# -- IDX headers -------------------------------------------------------------------------------


def test_crafted_idx_headers_load_or_are_refused(tmp_path):
    rng = random.Random(3)
    outcomes = []
    for case in range(150):
        type_code = rng.choice([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF])
        ndim = rng.choice([0, 1, 3, 4, 255])
        dims = [rng.choice([0, 1, 28, 60_000, 2**31 - 1, -1]) for _ in range(min(ndim, 8))]
        header = bytes([0, 0, type_code, ndim]) + b"".join(struct.pack(">i", d) for d in dims)
        raw = header + bytes(rng.choice([0, 16, 784, 4096]))
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw) + 1)]  # cut anywhere, the header too
        path = tmp_path / f"{case}-images-idx3-ubyte"
        path.write_bytes(gzip.compress(raw) if rng.random() < 0.5 else raw)
        outcomes.append(_outcome(lambda p=path: read_idx(p)))
    assert outcomes.count("refused") > 75
