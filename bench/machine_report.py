"""Machine, package and git facts recorded with every benchmark result."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[1]


def _cpuinfo() -> list[tuple[str, str]]:
    """(key, value) of every line of /proc/cpuinfo (empty where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    return [(key.strip(), value.strip()) for key, value in (line.split(":", 1) for line in lines if ":" in line)]


def cpu_model() -> str:
    """The "model name" of /proc/cpuinfo, or platform.processor() where there is none."""
    return next((value for key, value in _cpuinfo() if key == "model name"), None) or platform.processor()


def cpu_details() -> dict:
    """CPU family/model/stepping, clock (MHz), whether virtualised, logical and usable CPUs,
    total memory (GB), from /proc where available."""
    fields = _cpuinfo()
    first: dict[str, str] = {}
    for key, value in fields:
        first.setdefault(key, value)
    details = {"cpu_family_model_stepping": [first.get("cpu family"), first.get("model"), first.get("stepping")],
               "cpu_mhz": first.get("cpu MHz"), "cpu_virtualised": "hypervisor" in first.get("flags", "").split(),
               "logical_cpus": sum(key == "processor" for key, _ in fields) or os.cpu_count(),
               "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    try:
        with open("/proc/meminfo") as handle:
            details["memory_total_gb"] = float(handle.readline().split()[1]) / 1024**2
    except (OSError, IndexError, ValueError):
        pass
    return details


def git_state() -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files differ from it) of the repository."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()

    try:
        return git("rev-parse", "HEAD") or None, bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None


def machine_report(packages: Iterable[str], **extra: Any) -> dict:
    """Python, platform, CPU (:func:`cpu_details`), core count, installed versions of
    ``packages``, git state, plus ``extra`` entries (threads, load averages, ...)."""
    versions = {}
    for distribution in packages:
        try:
            versions[distribution] = version(distribution)
        except PackageNotFoundError:
            versions[distribution] = None
    commit, dirty = git_state()
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), **cpu_details(), "versions": versions, "git_commit": commit,
            "git_dirty_tracked": dirty, **extra}
