#!/usr/bin/env python
"""Descriptor benchmark: ours against dscribe (power spectrum) and featomic (λ-SOAP).

Run from the repository root::

    PYTHONPATH=. python bench/bench_descriptors.py            # full box, 14 400 atoms
    PYTHONPATH=. python bench/bench_descriptors.py --quick    # 1 800-atom sub-box, 1 rep

Box: ``bench_box_na2si2o5_14400.extxyz`` from the shared reference folder
(``$ASE_MLNMR_SHARED`` or ``../shared`` beside the repository). Settings: species Na, Si,
O; r_cut 5 Å, n_max 6, l_max 4, σ 0.4 Å; one thread (the thread variables are set below,
before NumPy is imported). Contenders of a comparison run interleaved (ours, peer, ours,
peer, ...) in one process, so a load change on a shared machine hits both; the best
repetition counts. Set-up (radial tables, calculators) is timed separately.

Peak memory: every contender runs once more in its own subprocess (``--memory-worker``)
after the imports, the structure and the set-up; the peak resident set size of the run
minus the resident set size just before it is reported. On Linux the high-water mark is
reset first (``/proc/self/clear_refs``, then ``VmHWM``). Elsewhere ``ru_maxrss`` is the
fallback, which can only overstate the increase: a child's ``ru_maxrss`` starts from its
parent's resident size at fork time, which is why the memory subprocesses are started
before the timings, while this process is still small.

Results: a Markdown table on stdout and JSON in ``bench/results/`` (gitignored).
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared_data import shared_dir  # noqa: E402

BOX_NAME = "bench_box_na2si2o5_14400.extxyz"
SETTINGS = dict(species=["Na", "Si", "O"], r_cut=5.0, n_max=6, l_max=4, sigma=0.4)
LAMBDA = 2
N_FEATURE_CENTRES = 1000
SEED = 20250101


# --------------------------------------------------------------------------- structures
def load_box():
    import ase.io

    path = shared_dir() / "reference" / BOX_NAME
    if not path.is_file():
        sys.exit(f"benchmark box not found: {path} (set ASE_MLNMR_SHARED to the shared folder)")
    return ase.io.read(path)


def octant(atoms):
    """The atoms with every fractional coordinate < 0.5, in the cell halved along each axis.

    Kept periodic: the cut makes artificial contacts across the new faces (fine for a
    timing or memory benchmark, not for physics). 14 400 atoms give about 1 800.
    """
    from ase import Atoms

    fractional = atoms.get_scaled_positions(wrap=True)
    keep = np.all(fractional < 0.5, axis=1)
    return Atoms(
        numbers=atoms.numbers[keep], positions=atoms.positions[keep], cell=atoms.cell.array / 2, pbc=True
    )


def make_structure(kind: str):
    """``full`` (14 400), ``quick`` (octant, ~1 800) or ``repeat2`` (2×2×2 copies, 115 200)."""
    box = load_box()
    if kind == "full":
        return box
    if kind == "quick":
        return octant(box)
    if kind == "repeat2":
        return box.repeat((2, 2, 2))
    raise ValueError(f"unknown structure {kind!r}: expected full, quick or repeat2")


# --------------------------------------------------------------------------- contenders
def featomic_hypers() -> dict:
    """featomic 0.6.7 hyper-parameters matching ours, with the GTO basis.

    ``EquivariantPowerSpectrum`` accepts only a ``TensorProduct`` basis, and featomic's
    spherical Bessel basis exists only through ``SoapSpliner`` (an ``Explicit`` basis), so
    the λ-SOAP peer runs with featomic's native GTO radial basis of the same size. Both
    bases are splined in featomic, so the cost per neighbour does not depend on which.
    """
    r_cut, n_max, l_max, sigma = (SETTINGS[k] for k in ("r_cut", "n_max", "l_max", "sigma"))
    return {
        "cutoff": {"radius": r_cut, "smoothing": {"type": "ShiftedCosine", "width": r_cut}},
        "density": {"type": "Gaussian", "width": sigma, "center_atom_weight": 0.0},
        "basis": {"type": "TensorProduct", "max_angular": l_max, "radial": {"type": "Gto", "max_radial": n_max - 1}},
    }


def _ours_soap():
    from ase_mlnmr.descriptors import SOAP

    return SOAP(**SETTINGS)


def _ours_lambda():
    from ase_mlnmr.descriptors import LambdaSOAP

    return LambdaSOAP(**SETTINGS, lam=LAMBDA, two_body=True)


def setup_ours_neighbour_list(atoms):
    soap = _ours_soap()
    return lambda: soap.neighbour_list(atoms)


def setup_ours_power_spectrum(atoms):
    soap = _ours_soap()
    return lambda: soap.create(atoms)


def setup_dscribe_soap(atoms):
    from dscribe.descriptors import SOAP as DscribeSOAP

    soap = DscribeSOAP(
        species=SETTINGS["species"], r_cut=SETTINGS["r_cut"], n_max=SETTINGS["n_max"], l_max=SETTINGS["l_max"],
        sigma=SETTINGS["sigma"], rbf="gto", periodic=True,
    )
    return lambda: soap.create(atoms)


def setup_ours_lambda_contract(atoms):
    descriptor = _ours_lambda()
    weights = np.random.default_rng(SEED).normal(size=descriptor.n_features)
    return lambda: descriptor.contract(atoms, weights)


def _featomic_lambda():
    import featomic
    import metatensor
    from featomic.clebsch_gordan import EquivariantPowerSpectrum

    calculator = EquivariantPowerSpectrum(featomic.SphericalExpansion(**featomic_hypers()))
    keys = metatensor.Labels(["o3_lambda", "o3_sigma"], np.array([[LAMBDA, 1]]))
    return calculator, keys


def setup_featomic_lambda_dot(atoms):
    """featomic λ = 2 features (dense over neighbour species), then one dot product per centre species."""
    calculator, keys = _featomic_lambda()
    rng = np.random.default_rng(SEED)
    weights: dict[int, np.ndarray] = {}

    def run():
        tensor = calculator.compute(atoms, selected_keys=keys, neighbors_to_properties=True)
        out = np.empty((len(atoms), 2 * LAMBDA + 1))
        for key, block in tensor.items():
            z = int(key["center_type"])
            if z not in weights:
                weights[z] = rng.normal(size=block.values.shape[-1])
            out[block.samples.column("atom")] = block.values @ weights[z]
        return out

    return run


def setup_ours_lambda_features(atoms):
    descriptor = _ours_lambda()
    centres = np.arange(min(N_FEATURE_CENTRES, len(atoms)))
    return lambda: descriptor.create(atoms, centres=centres)


def setup_featomic_lambda_features(atoms):
    import metatensor

    calculator, keys = _featomic_lambda()
    centres = np.arange(min(N_FEATURE_CENTRES, len(atoms))).reshape(-1, 1)
    samples = metatensor.Labels(["atom"], centres)
    return lambda: calculator.compute(atoms, selected_keys=keys, selected_samples=samples, neighbors_to_properties=True)


CONTENDERS = {
    "ours_neighbour_list": ("ours: neighbour list alone (r_cut 5 Å)", setup_ours_neighbour_list),
    "ours_power_spectrum": ("ours: neighbour list + power spectrum, all atoms", setup_ours_power_spectrum),
    "dscribe_soap": ("dscribe 2.1.2 SOAP, rbf='gto', all atoms", setup_dscribe_soap),
    "ours_lambda_contract": ("ours: contracted λ=2 model, all atoms (incl. neighbour list)", setup_ours_lambda_contract),
    "featomic_lambda_dot": ("featomic 0.6.7 λ-SOAP (λ=2) + dot product, all atoms", setup_featomic_lambda_dot),
    "ours_lambda_features": (f"ours: λ=2 features only, {N_FEATURE_CENTRES} centres", setup_ours_lambda_features),
    "featomic_lambda_features": (f"featomic λ=2 features only, {N_FEATURE_CENTRES} centres", setup_featomic_lambda_features),
}
# featomic λ-SOAP takes ~7-17 s and ~3 GB a run: its repetitions are set apart (--peer-reps)
SLOW_PEERS = {"featomic_lambda_dot", "featomic_lambda_features"}
# comparisons run interleaved; the ratio is peer time / our time (or peer memory / ours)
GROUPS = [
    ("ours_neighbour_list",),
    ("ours_power_spectrum", "dscribe_soap"),
    ("ours_lambda_contract", "featomic_lambda_dot"),
    ("ours_lambda_features", "featomic_lambda_features"),
]
COMPARISONS = [
    # (ours, peer, speed-up target, memory-ratio target)
    ("ours_power_spectrum", "dscribe_soap", 2.0, None),
    ("ours_lambda_contract", "featomic_lambda_dot", 20.0, 10.0),
    ("ours_lambda_features", "featomic_lambda_features", None, None),
]


# --------------------------------------------------------------------------- measuring
def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def measure_peak(run) -> dict:
    """Run once; peak RSS increase over the RSS just before (MB)."""
    gc.collect()
    baseline_kb = _status_kb("VmRSS")
    maxrss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = _reset_peak() and baseline_kb is not None
    start = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - start
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kb = _status_kb("VmHWM") if reset else None
    if baseline_kb is None:
        baseline_kb = maxrss_before_kb
    # ru_maxrss of a child starts from the parent's resident size at fork time on Linux,
    # so it is kept for reference only; VmHWM after the reset is the number to use.
    record = {"baseline_rss_mb": baseline_kb / 1024, "ru_maxrss_mb": maxrss_kb / 1024, "time_s": elapsed}
    if peak_kb is not None:
        record.update(method="VmHWM after clear_refs", peak_rss_mb=peak_kb / 1024, delta_mb=(peak_kb - baseline_kb) / 1024)
    else:
        record.update(method="ru_maxrss", peak_rss_mb=maxrss_kb / 1024, delta_mb=(maxrss_kb - baseline_kb) / 1024)
    del result
    return record


def memory_worker(name: str, structure: str) -> None:
    """Subprocess entry: imports, structure, set-up, then one measured run; JSON on stdout."""
    atoms = make_structure(structure)
    run = CONTENDERS[name][1](atoms)
    record = measure_peak(run)
    record.update(name=name, structure=structure, n_atoms=len(atoms))
    print(json.dumps(record))


def run_memory_worker(name: str, structure: str, script: Path | None = None, extra_args=()) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    command = [sys.executable, str(script or Path(__file__).resolve()), "--memory-worker", name, "--structure", structure, *extra_args]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"name": name, "structure": structure, "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_group(names, atoms, reps: int, peer_reps: int) -> dict:
    """Set up each contender, then run them interleaved; every time kept."""
    records = {}
    runs = {}
    for name in names:
        start = time.perf_counter()
        runs[name] = CONTENDERS[name][1](atoms)
        records[name] = {"label": CONTENDERS[name][0], "setup_s": time.perf_counter() - start, "times_s": [], "cpu_times_s": []}
    wanted = {name: (peer_reps if name in SLOW_PEERS else reps) for name in names}
    for rep in range(max(wanted.values())):
        for name in names:
            if rep >= wanted[name]:
                continue
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            result = runs[name]()
            records[name]["times_s"].append(time.perf_counter() - start)
            records[name]["cpu_times_s"].append(time.process_time() - start_cpu)
            if rep == 0:
                records[name]["output_shape"] = _shape(result)
            del result
            print(f"  {name:28s} rep {rep + 1}: {records[name]['times_s'][-1]:.3f} s", file=sys.stderr, flush=True)
    for name in names:
        records[name]["best_s"] = min(records[name]["times_s"])
        records[name]["best_cpu_s"] = min(records[name]["cpu_times_s"])
        records[name]["n_atoms"] = (
            min(N_FEATURE_CENTRES, len(atoms)) if name.endswith("lambda_features") else len(atoms)
        )
    del runs
    gc.collect()
    return records


def _shape(result):
    if hasattr(result, "shape"):
        return list(result.shape)
    if hasattr(result, "n_pairs"):
        return [int(result.n_pairs)]
    if isinstance(result, tuple) and hasattr(result[0], "n_pairs"):
        return [int(result[0].n_pairs)]
    if hasattr(result, "blocks"):
        return [list(block.values.shape) for block in result.blocks()]
    return None


# --------------------------------------------------------------------------- reporting
def machine_info() -> dict:
    """:func:`machine_report.machine_report` plus the load average and the build of the compiled core."""
    from machine_report import machine_report

    return machine_report(("numpy", "ase", "scipy", "featomic", "metatensor-core", "dscribe", "psutil"),
                          load_average=list(os.getloadavg()), compiler_of_core=_core_compiler(),
                          core_build=_core_build())


def _core_compiler() -> str | None:
    try:
        from ase_mlnmr.core import _soap_core

        done = subprocess.run(["readelf", "-p", ".comment", _soap_core.__file__], capture_output=True, text=True)
        lines = [line.split("]", 1)[1].strip() for line in done.stdout.splitlines() if "]" in line]
        return lines[0] if lines else None
    except (OSError, ImportError):
        return None


def _core_build() -> dict | None:
    """Which build of the compiled core ran: file, modification time and a short hash."""
    import hashlib

    try:
        from ase_mlnmr.core import _neighbours, _soap_core
    except ImportError:
        return None
    build = {}
    for module in (_soap_core, _neighbours):
        path = Path(module.__file__)
        build[path.name] = {
            "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime)),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:12],
        }
    return build


def markdown(timings: dict, memory: dict) -> str:
    lines = [
        "| what | atoms | best time (s) | best CPU time (s) | reps | atoms/s | set-up (s) | peak memory (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, record in timings.items():
        mem = memory.get(name, {})
        mem_text = f"{mem['delta_mb']:.0f}" if "delta_mb" in mem else "–"
        lines.append(
            f"| {record['label']} | {record['n_atoms']} | {record['best_s']:.3f} | {record['best_cpu_s']:.3f} | {len(record['times_s'])} | "
            f"{record['n_atoms'] / record['best_s']:,.0f} | {record['setup_s']:.2f} | {mem_text} |"
        )
    lines += [
        "",
        "| comparison | speed-up (peer / ours, wall) | (CPU time) | target | memory (peer / ours) | target |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for ours, peer, speed_target, memory_target in COMPARISONS:
        if ours not in timings or peer not in timings:
            continue
        speed = timings[peer]["best_s"] / timings[ours]["best_s"]
        speed_cpu = timings[peer]["best_cpu_s"] / timings[ours]["best_cpu_s"]
        if "delta_mb" in memory.get(ours, {}) and "delta_mb" in memory.get(peer, {}):
            mem_ratio = memory[peer]["delta_mb"] / max(memory[ours]["delta_mb"], 1e-3)
            mem_text = f"{mem_ratio:.1f}×"
        else:
            mem_ratio, mem_text = None, "–"

        def verdict(value, target):
            if target is None or value is None:
                return "–"
            return f"≥ {target:g}× ({'met' if value >= target else 'MISSED'})"

        lines.append(
            f"| {ours} vs {peer} | {speed:.1f}× | {speed_cpu:.1f}× | {verdict(speed, speed_target)} | {mem_text} | {verdict(mem_ratio, memory_target)} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition on the ~1 800-atom sub-box (smoke test)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions for ours and dscribe (default 3, quick 1)")
    parser.add_argument("--peer-reps", type=int, default=1, help="repetitions for featomic λ-SOAP (default 1: ~7-17 s and ~3-4 GB each)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS), help="run only these contenders")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/descriptors_<mode>_<time>.json)")
    parser.add_argument("--memory-worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--structure", choices=["full", "quick", "repeat2"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_worker:
        memory_worker(args.memory_worker, args.structure or "full")
        return 0

    structure = args.structure or ("quick" if args.quick else "full")
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    peer_reps = 1 if args.quick else args.peer_reps
    atoms = make_structure(structure)
    info = machine_info()
    print(f"# {len(atoms)} atoms ({structure}); reps {reps}, featomic reps {peer_reps}; "
          f"{info['cpu']}, load {info.get('load_average')}", file=sys.stderr)

    selected = [name for group in GROUPS for name in group if not args.only or name in args.only]
    memory = {}
    if not args.no_memory:  # first, while this process is small (see the module docstring)
        for name in selected:
            print(f"  memory: {name}", file=sys.stderr, flush=True)
            memory[name] = run_memory_worker(name, structure)
    timings = {}
    for group in GROUPS:
        names = [n for n in group if n in selected]
        if names:
            timings.update(time_group(names, atoms, reps, peer_reps))
    info["load_average_end"] = list(os.getloadavg())

    table = markdown(timings, memory)
    print(table)
    result = {
        "mode": "quick" if args.quick else "full",
        "structure": structure,
        "n_atoms": len(atoms),
        "settings": {**SETTINGS, "lam": LAMBDA, "threads": 1, "reps": reps, "peer_reps": peer_reps},
        "featomic_hypers": featomic_hypers(),
        "machine": info,
        "timings": timings,
        "memory": memory,
        "markdown": table,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    output = args.output or REPO / "bench" / "results" / f"descriptors_{result['mode']}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
