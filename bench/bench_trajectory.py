"""Trajectory tools benchmark (results in docs/benchmarks.md, "Trajectory tools").

1. Frames per second of ``ase-mlnmr trajectory`` on a short synthetic trajectory of the
   14 400-atom Na2Si2O5 box (atoms jiggled about their sites), on 1 and 2 MPI ranks, side
   by side in one run: wall time, CPU time of all ranks, load average.
2. Streaming correlator: CPU cost per atom per sample (EFG channel, 5 components, and the
   scalar channel) and memory per atom, measured (RSS growth) against the formula.
3. Memory flat over a 10× longer stream (correlator + series store, synthetic values for
   14 400 atoms): peak RSS after N and 10 N frames.

Usage: ``python bench/bench_trajectory.py [--frames 8] [--out bench/results]``.
The machine is shared: CPU times are the figures to compare, wall times are indicative.
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

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_report import machine_report  # noqa: E402
from shared_data import shared_dir  # noqa: E402

MODEL_CONFIG = {"descriptor": {"r_cut": 5.0, "n_max": 5, "l_max": 4, "sigma": 0.5, "mixing_channels": 4},
                "species": {"O": {"properties": ["efg"]}, "Na": {"properties": ["efg"]},
                            "Si": {"properties": ["ms_iso", "efg"]}},
                "ms_iso": {"n_inducing": 300}, "ood": {"n_inducing": 200}, "efg": {"alpha": 1e-3}}


def synthetic_trajectory(path: Path, n_frames: int, amplitude: float = 0.05, seed: int = 0) -> Path:
    from ase.io import read, write

    box = read(shared_dir() / "reference" / "bench_box_na2si2o5_14400.extxyz")
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        atoms = box.copy()
        atoms.positions += rng.normal(scale=amplitude, size=atoms.positions.shape)
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def model_file(path: Path) -> Path:
    from ase_mlnmr.examples import load_mp_al27
    from ase_mlnmr.nmr_model import NMRModel

    model = NMRModel.train(load_mp_al27(), MODEL_CONFIG, progress=False)
    return model.save(path)


def frames_per_second(model: Path, trajectory: Path, n_frames: int, work: Path) -> dict:
    """Run the CLI on 1 and 2 ranks (subprocesses), alternately, and time each."""
    results = {}
    for ranks in (1, 2):
        command = [sys.executable, "-c", "import sys; from ase_mlnmr.cli import main; sys.exit(main())",
                   "trajectory", str(model), str(trajectory), "-o", str(work / f"out{ranks}"), "--frame-time-fs",
                   "5", "-q", "--no-plots", "--no-exact", "--no-series", "--levels", "3", "--level-length", "4",
                   "--chunk-frames", "1"]
        if ranks > 1:
            command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] + command
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = os.getloadavg()
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{ranks} rank(s): exit code {done.returncode} after {wall:.0f} s\n"
                               f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        results[ranks] = {"wall_s": wall, "cpu_s_all_ranks": cpu, "frames_per_s_wall": n_frames / wall,
                          "load_before": load, "load_after": os.getloadavg()}
    results["speedup_wall_1_to_2"] = results[1]["wall_s"] / results[2]["wall_s"]
    return results


def correlator_cost(n_atoms: int = 14400, n_samples: int = 200) -> dict:
    """CPU time per atom per sample and memory per atom of the streaming correlator."""
    from ase_mlnmr.core._correlator import StreamingCorrelator

    rng = np.random.default_rng(1)
    ids = np.arange(1, n_atoms + 1)
    groups = (ids % 3).astype(np.int32)
    values = rng.normal(size=(8, n_atoms, 5))
    process = psutil.Process()
    rss_before = process.memory_info().rss
    corr = StreamingCorrelator([5, 1], [1, 1], 5.0, p=16, m=2, n_levels=12, n_groups=3)
    out = {"state_doubles_per_atom": corr.state_size, "n_lags": corr.n_lags}
    timings = {}
    for channel, dim in ((0, 5), (1, 1)):
        start = time.process_time()
        for t in range(n_samples):
            corr.add(channel, t, ids, groups, values[t % 8][:, :dim])
        timings[channel] = (time.process_time() - start) / (n_samples * n_atoms)
    rss_after = process.memory_info().rss
    out.update(cpu_us_per_atom_sample_efg=1e6 * timings[0], cpu_us_per_atom_sample_scalar=1e6 * timings[1],
               formula_bytes_per_atom=8 * corr.state_size, allocated_bytes_per_atom=corr.allocated_bytes / n_atoms,
               measured_rss_bytes_per_atom=(rss_after - rss_before) / n_atoms)
    return out


def memory_flat(n_atoms: int = 14400, short: int = 60) -> dict:
    """Peak RSS of the streaming part (correlator + series store) after N and 10 N frames."""
    from ase_mlnmr.core._correlator import StreamingCorrelator
    from ase_mlnmr.trajectory.analysis import STORE_CHANNELS
    from ase_mlnmr.trajectory.correlation import SeriesStore

    process = psutil.Process()
    rng = np.random.default_rng(2)
    ids = np.arange(1, n_atoms + 1)
    groups = np.zeros(n_atoms, dtype=np.int32)
    frame = {name: rng.normal(size=(n_atoms, d)) for name, d in STORE_CHANNELS.items()}
    corr = StreamingCorrelator([5, 1], [1, 1], 5.0, p=16, m=2, n_levels=12)
    rss = {0: process.memory_info().rss}
    with tempfile.TemporaryDirectory() as folder:
        store = SeriesStore(folder, n_atoms, STORE_CHANNELS)
        for t in range(10 * short):
            corr.add(0, t, ids, groups, frame["efg"])
            corr.add(1, t, ids, groups, frame["shift"])
            store.append(frame)
            if t + 1 in (short, 10 * short):
                rss[t + 1] = process.memory_info().rss
        store.close()
    return {"frames": [0, short, 10 * short], "rss_MB": [rss[0] / 1e6, rss[short] / 1e6, rss[10 * short] / 1e6],
            "correlator_allocated_MB": corr.allocated_bytes / 1e6,
            "series_on_disk_MB_at_10N": 10 * short * n_atoms * sum(STORE_CHANNELS.values()) * 8 / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames of the synthetic 14 400-atom trajectory")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--parts", default="correlator,memory,fps", help="comma-separated parts to run")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine_report(["numpy", "scipy", "ase", "mpi4py"], load_average=os.getloadavg())}
    parts = set(args.parts.split(","))
    if "correlator" in parts:
        report["correlator"] = correlator_cost()
        print(json.dumps(report["correlator"], indent=1), flush=True)
    if "memory" in parts:
        report["memory_flat"] = memory_flat()
        print(json.dumps(report["memory_flat"], indent=1), flush=True)
    if "fps" not in parts:
        (out / "bench_trajectory.json").write_text(json.dumps(report, indent=1, default=str))
        return
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = model_file(work / "model.npz")
        trajectory = synthetic_trajectory(work / "box.extxyz", args.frames)
        report["frames_per_second"] = frames_per_second(model, trajectory, args.frames, work)
    print(json.dumps(report["frames_per_second"], indent=1), flush=True)
    report["machine"]["load_average_end"] = os.getloadavg()
    (out / "bench_trajectory.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
