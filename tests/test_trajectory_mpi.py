"""MPI over frames gives exactly the serial result: 2 ranks and 3 (oversubscribed on this
machine) against a serial run, per atom and for G(s), bitwise."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ase_mlnmr
import numpy as np
import pytest

from trajectory_helpers import jiggled_frames, small_model, write_dump, write_extxyz

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("no mpiexec", allow_module_level=True)


def _run(ranks: int, model: Path, trajectory: Path, output: Path) -> subprocess.CompletedProcess:
    timing = ["--types", "Si,O", "--timestep-fs", "1"] if trajectory.suffix == ".dump" else ["--frame-time-fs", "4"]
    command = [sys.executable, "-c", "import sys; from ase_mlnmr.cli import main; sys.exit(main())", "trajectory",
               str(model), str(trajectory), "-o", str(output), "-q", "--no-plots", "--level-length", "8",
               "--levels", "5", "--blocks", "3", *timing]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks)] + command
    env = {**os.environ, "PYTHONPATH": str(Path(ase_mlnmr.__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # run outside the checkout: "-c" puts the working folder first on sys.path, which must not shadow the package
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,  # a deadlock fails the test
                          cwd=Path(output).parent)


def test_two_and_three_ranks_equal_serial_exactly(tmp_path):
    model = small_model().save(tmp_path / "model.npz")
    frames = jiggled_frames(70, n_atoms=24, seed=8)  # chunks of 16 frames: 16, 16, 16, 16, 6
    dump = write_dump(tmp_path / "md.dump", frames, steps=4 * np.arange(70), type_of={"Si": 1, "O": 2})
    outputs = {}
    for ranks in (1, 2, 3):
        outputs[ranks] = tmp_path / f"out{ranks}"
        done = _run(ranks, model, dump, outputs[ranks])
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((outputs[ranks] / "summary.json").read_text())["mpi_ranks"] == ranks
    serial = np.load(outputs[1] / "time_averages.npz")
    assert np.isfinite(serial["efg"]).all()
    for ranks in (2, 3):
        parallel = np.load(outputs[ranks] / "time_averages.npz")
        assert set(parallel.files) == set(serial.files)
        for name in serial.files:
            np.testing.assert_array_equal(parallel[name], serial[name], err_msg=f"{name}, {ranks} ranks")
        for name in ("correlation_streaming.csv", "correlation_fft.csv", "vibrational_scaling.json",
                     "time_averaged.csv"):
            assert (outputs[ranks] / name).read_bytes() == (outputs[1] / name).read_bytes(), (name, ranks)
        for name in ("efg.f64", "cq.f64", "shift.f64"):
            assert (outputs[ranks] / "series" / name).read_bytes() == (outputs[1] / "series" / name).read_bytes()


def test_ase_formats_under_mpi(tmp_path):
    """Extended XYZ goes through ase.io.iread, which by itself broadcasts between MPI ranks
    (a deadlock when only rank 0 reads): 2 ranks equal serial."""
    model = small_model().save(tmp_path / "model.npz")
    trajectory = write_extxyz(tmp_path / "md.extxyz", jiggled_frames(40, n_atoms=24, seed=9))
    for ranks in (1, 2):
        done = _run(ranks, model, trajectory, tmp_path / f"out{ranks}")
        assert done.returncode == 0, done.stderr[-3000:]
    for name in ("correlation_streaming.csv", "time_averaged.csv", "time_averaged.magres"):
        assert (tmp_path / "out2" / name).read_bytes() == (tmp_path / "out1" / name).read_bytes(), name
