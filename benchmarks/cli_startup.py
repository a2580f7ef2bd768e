"""Start-up: wall-clock and CPU time of ``vaekit --help``, run as a user runs it.

Each run is a fresh process of the installed console script (the ``vaekit`` beside
this Python), from a neutral working directory, with stdout to /dev/null. With
``--tree DIR`` (repeatable) each tree's ``vaekit`` and example plugins are put first
on ``PYTHONPATH``, so two checkouts (say ``main`` and a branch) can be compared in
one run: the runs alternate between them, so load that changes during the run hits
both alike. Prints the median and minimum of each, and the load average.

    python benchmarks/cli_startup.py --runs 21
    python benchmarks/cli_startup.py --runs 21 --tree ../base --tree .
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_env(tree: str | None) -> dict[str, str]:
    """The environment that makes the console script import ``tree``'s vaekit."""
    env = dict(os.environ)
    if tree is not None:
        root = Path(tree).resolve()
        paths = [root, root / "plugins" / "vaekit-example", root / "plugins" / "vaekit-zoo"]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--tree", action="append", help="a checkout to time (repeatable)")
    parser.add_argument("--args", default="--help", help="the vaekit arguments to time")
    args = parser.parse_args()

    command = [str(Path(sys.executable).with_name("vaekit")), *args.args.split()]
    trees = args.tree or [None]
    envs = [tree_env(t) for t in trees]
    wall: list[list[float]] = [[] for _ in trees]
    cpu: list[list[float]] = [[] for _ in trees]
    with tempfile.TemporaryDirectory() as cwd:
        for env in envs:  # warm the OS caches and vaekit's entry-point cache
            subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        load_before = os.getloadavg()[0]
        for r in range(args.runs):
            order = range(len(trees)) if r % 2 == 0 else reversed(range(len(trees)))
            for i in order:
                used, start = child_cpu(), time.perf_counter()
                subprocess.run(command, env=envs[i], cwd=cwd, stdout=subprocess.DEVNULL, check=True)
                wall[i].append(time.perf_counter() - start)
                cpu[i].append(child_cpu() - used)
    bytecode = "off" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(
        f"vaekit {args.args}: {args.runs} runs each, load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f}, writing bytecode {bytecode}"
    )
    print(f"{'tree':<32}{'wall median':>12}{'wall min':>10}{'CPU median':>12}{'CPU min':>9}")
    for tree, w, c in zip(trees, wall, cpu, strict=True):
        print(
            f"{tree or '(installed)':<32}{statistics.median(w):>11.3f}s{min(w):>9.3f}s"
            f"{statistics.median(c):>11.3f}s{min(c):>8.3f}s"
        )


if __name__ == "__main__":
    main()
