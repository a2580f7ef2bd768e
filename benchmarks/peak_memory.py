"""Resident memory of a benchmark's own process, from Linux's /proc: shared by the
benchmarks that measure each arm's peak in a fresh subprocess.

Not ``ru_maxrss``: Linux carries that over from the parent across fork + exec, so a
child started by a (larger) benchmark process would report the parent's size.
"""

from __future__ import annotations

from pathlib import Path


def rss_kib(field: str = "VmRSS") -> int:
    """This process's RSS now (``VmRSS``) or its high-water mark (``VmHWM``), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def reset_peak(required: bool = False) -> bool:
    """Set the high-water mark (VmHWM) to the RSS now, so that the next peak read is the
    work's own. Where the kernel cannot (Linux before 4.0): False, or RuntimeError when
    ``required`` (a peak that would include the set-up is no figure)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as error:
        if required:
            raise RuntimeError(f"cannot reset the peak-memory mark: {error}") from error
        return False
    return True
