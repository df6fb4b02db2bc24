"""Machine, package and git facts recorded with every accuracy benchmark result."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The "model name" of /proc/cpuinfo, or platform.processor() where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


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
    """Python, platform, CPU, core count, installed versions of ``packages``, git state,
    plus ``extra`` entries (threads, load averages, ...)."""
    versions = {}
    for distribution in packages:
        try:
            versions[distribution] = version(distribution)
        except PackageNotFoundError:
            versions[distribution] = None
    commit, dirty = git_state()
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "versions": versions, "git_commit": commit,
            "git_dirty_tracked": dirty, **extra}
