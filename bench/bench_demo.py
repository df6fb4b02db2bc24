"""Time the demo after install, from a fresh clone into a fresh virtual environment,
with the install timed separately.

    python bench/bench_demo.py [--mode full|quick|ase-only] [--source GIT_URL_OR_PATH]
                               [--venv DIR] [--no-install] [--in-place] [--json results.json]

1. clone: ``git clone SOURCE`` (default: this checkout's repository at its HEAD commit;
   uncommitted changes are not in the clone, and the report says so);
2. install: ``python3 -m venv DIR && DIR/bin/pip install CLONE`` (the README's first
   command without its last step), wall and CPU time (children);
3. demo: ``DIR/bin/ase-mlnmr demo [--quick|--ase-only] -q -o OUT``, run outside the
   clone, wall and CPU time.

``--no-install`` reuses an existing ``--venv``; ``--in-place`` runs the demo from this
checkout (``python -m ase_mlnmr.cli`` with the repository on PYTHONPATH, built in place)
and reports no clone or install. Aim (issue 14): the default demo ≤ 10 min on 2 cores
after install. The machine load (``uptime``) before and after is printed: on a shared
machine wall times are indicative only, CPU times (children's user + system) are the
figures to compare.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run ``argv``; wall time and the CPU time (user + system) of the process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"argv": argv, "exit_code": done.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
    if done.returncode != 0:
        result["output_tail"] = (done.stdout + done.stderr)[-3000:]
    return result


def install(source: str, venv: Path, work: Path) -> dict:
    """Fresh clone of ``source`` at this checkout's HEAD, fresh venv, ``pip install CLONE``."""
    clone = work / "clone"
    steps = {"clone": timed(["git", "clone", "-q", source, str(clone)], work)}
    head = git("rev-parse", "HEAD")
    if steps["clone"]["exit_code"] == 0 and source == str(REPO):
        steps["checkout"] = timed(["git", "-C", str(clone), "checkout", "-q", head], work)
    steps["commit"] = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()
    if git("status", "--porcelain", "--untracked-files=no"):
        steps["note"] = "this checkout has uncommitted changes: they are not in the clone"
    if all(s["exit_code"] == 0 for s in steps.values() if isinstance(s, dict)):
        steps["venv"] = timed(["python3", "-m", "venv", str(venv)], work)
    if steps.get("venv", {}).get("exit_code") == 0:
        steps["pip"] = timed([str(venv / "bin" / "pip"), "install", "-q", str(clone)], work)
    steps["total_wall_s"] = round(sum(s["wall_s"] for s in steps.values() if isinstance(s, dict)), 1)
    steps["total_cpu_s"] = round(sum(s["cpu_s"] for s in steps.values() if isinstance(s, dict)), 1)
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("full", "quick", "ase-only"), default="full")
    parser.add_argument("--source", default=str(REPO), help="repository to clone (default: this checkout, at HEAD)")
    parser.add_argument("--venv", default=None, help="virtual environment folder (default: a new temporary one)")
    parser.add_argument("--no-install", action="store_true", help="reuse --venv as it is")
    parser.add_argument("--in-place", action="store_true", help="run the demo from this checkout, no install")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    report = {"mode": args.mode, "load_before": load(), "cpu_count": os.cpu_count()}
    flags = {"full": [], "quick": ["--quick"], "ase-only": ["--ase-only"]}[args.mode]
    if args.in_place:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        demo = [sys.executable, "-m", "ase_mlnmr.cli", "demo", *flags, "-q", "-o", str(work / "demo")]
    else:
        venv = Path(args.venv) if args.venv else work / "venv"
        if not args.no_install:
            report["install"] = install(args.source, venv, work)
            report["load_after_install"] = load()
            print(f"install: {json.dumps(report['install'], indent=1)}", flush=True)
            if report["install"].get("pip", {}).get("exit_code") != 0:
                print(json.dumps(report, indent=1))
                return 1
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        demo = [str(venv / "bin" / "ase-mlnmr"), "demo", *flags, "-q", "-o", str(work / "demo")]
    report["demo"] = timed(demo, work, env)
    report["load_after"] = load()
    report["output_folder"] = str(work / "demo")
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if report["demo"]["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
