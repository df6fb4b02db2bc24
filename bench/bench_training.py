#!/usr/bin/env python
"""Training benchmark: this checkout against commit 7e462e0 (before the ridge-selection
engine), side by side in one run, plus the default config on the embedded oxides.

Run from the repository root, with the package built in place::

    PYTHONPATH=. python bench/bench_training.py --threads 1   # both parts (~9 CPU-min)
    PYTHONPATH=. python bench/bench_training.py --only default
    PYTHONPATH=. python bench/bench_training.py --only gehlenite --no-exact   # timed part only
    PYTHONPATH=. python bench/bench_training.py --exact-from bench/results/bench_training_….json

1. Gehlenite-sized EFG training (24 cells of ``<shared>/data/gehlenite_efg/orig/``, the
   pinned config :func:`pinned_config`: λ-SOAP r_cut 7 Å, n_max 6, l_max 6, σ 0.4, two-body,
   neighbours O/Al/Si/Ca, EFG of O and Si (``--species``: all four) with ``alpha: auto`` and
   ``feature_scaling: auto``, the α grid 1e-6…1e4 in half decades, 5 folds grouped by
   cell, seed 0). The old commit is exported with ``git archive`` into a temporary folder
   and built there; both sides train at the same time, each in its own subprocess
   (``PYTHONPATH`` pointing to its tree), measuring wall and CPU time
   (``time.process_time``: all threads) and peak RSS; the speed-up is the CPU-time ratio.
   The α search of each side is recorded by wrapping its selection function; reported:
   speed-up, the selected α and scaling of both per species, and the relative difference
   of the CV MAE at the selected pair. Then (not timed) the new side trains once more and
   compares each selected pair with the exact CV MAE of the same float64 features
   (``bench/training_reference.py``: iterative refinement with long-double residuals), so
   that the error of each side's CV MAE is known, not only their difference
   (``--exact-from results.json`` adds this to an earlier run).
2. ``ase-mlnmr train``'s default config on the 13 oxygen-bearing ``mp_al27`` crystals
   (``ase_mlnmr.examples.load_mp_al27``): wall / CPU time and peak RSS.

Output: JSON in ``bench/results/`` and a Markdown summary on stdout (for
``docs/benchmarks.md``, section "Training").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import shared_dir  # noqa: E402

OLD_COMMIT = "7e462e0"
ALL_SPECIES = ("Al", "O", "Ca", "Si")
#: Centre species trained by default: O (the widest problem, 4 032 sites: primal p × p
#: systems) and Si (576 sites: dual); ``--species Al,O,Ca,Si`` trains all four (≈ 3× the time).
DEFAULT_SPECIES = ("O", "Si")


def pinned_config(species) -> dict:
    """The pinned gehlenite config (both sides; the selection settings equal the old built-in ones)."""
    return {
        "neighbour_species": ["O", "Al", "Si", "Ca"],
        "descriptor": {"r_cut": 7.0, "n_max": 6, "l_max": 6, "sigma": 0.4},
        "efg": {"alpha": "auto", "feature_scaling": "auto", "two_body": True},
        "species": {sp: {"properties": ["efg"]} for sp in species},
    }


#: The new side states the selection settings the old code had built in.
PINNED_SELECTION = {"n_splits": 5, "alpha_grid": [10.0 ** (k / 2) for k in range(-12, 9)],
                    "auto_feature_scalings": ["per_feature", "global"]}

# Runs in a subprocess against either tree; prints one JSON line.
RUNNER = r'''
import json, resource, sys, time
kind, config, files = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
chosen = []
if kind == "old":
    import ase_mlnmr.nmr_model as owner
    from ase_mlnmr.dataset import read_tensor_dataset
    original = owner.select_equivariant_ridge
    def recording(*args, **kwargs):
        scaling, alpha, curves = original(*args, **kwargs)
        chosen.append({"feature_scaling": scaling, "alpha": alpha, "mae": float(min(min(c) for c in curves.values()))})
        return scaling, alpha, curves
    owner.select_equivariant_ridge = recording
else:
    import ase_mlnmr.training.fitting as owner
    from ase_mlnmr.training.dataset import read_tensor_dataset
    original = owner.search_equivariant_ridge
    if kind == "exact":  # the new engine, each choice also compared with the exact reference
        from training_reference import recording_walk
        original = recording_walk(original)
    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        chosen.append({"feature_scaling": result.feature_scaling, "alpha": result.alpha, "mae": result.mae})
        return result
    owner.search_equivariant_ridge = recording
from ase_mlnmr.nmr_model import NMRModel
if files == "mp_al27":
    from ase_mlnmr.examples import load_mp_al27
    data = load_mp_al27()
else:
    data = read_tensor_dataset(files, properties=["efg"])
wall, cpu = time.perf_counter(), time.process_time()
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = NMRModel.train(data, config, progress=False)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
order = [el for el, prop in sorted(model.models) if prop != "ood"]
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "models": sorted(f"{e} {p}" for e, p in model.models), "chosen": chosen,
                  "n_structures": len(data), "n_atoms": sum(len(a) for a in data.structures),
                  "skipped": [str(w.message) for w in caught if "not trained" in str(w.message)],
                  "exact": getattr(original, "comparisons", None)}))
'''


def start_side(tree: Path, kind: str, config: dict, files, threads: int) -> subprocess.Popen:
    """One training run in a subprocess against the package in ``tree``."""
    path = [str(tree)] + ([str(REPO / "bench")] if kind == "exact" else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen([sys.executable, "-c", RUNNER, kind, json.dumps(config), json.dumps(files)],
                            cwd=tempfile.gettempdir(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish_side(process: subprocess.Popen, kind: str) -> dict:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def run_side(tree: Path, kind: str, config: dict, files, threads: int) -> dict:
    return finish_side(start_side(tree, kind, config, files, threads), kind)


def export_old(folder: Path) -> Path:
    """The old commit's tree, exported and built in place."""
    tree = folder / f"ase_mlnmr_{OLD_COMMIT}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", "2"], cwd=tree, check=True,
                   capture_output=True)
    return tree


def gehlenite(threads: int, species, exact: bool = True) -> dict:
    files = gehlenite_files()
    if not files:
        return {"skipped": "gehlenite data not found"}
    with tempfile.TemporaryDirectory() as folder:
        old_tree = export_old(Path(folder))
        load_before = os.getloadavg()
        # side by side: both processes at once, so both see the same machine load; each
        # reports its own CPU time (all its threads)
        config = pinned_config(species)
        running = {"new": start_side(REPO, "new", {**config, "selection": PINNED_SELECTION}, files, threads),
                   "old": start_side(old_tree, "old", config, files, threads)}
        new, old = (finish_side(running[kind], kind) for kind in ("new", "old"))
        load_after = os.getloadavg()
    pairs = []  # both train the species in the order of the config
    for sp, a, b in zip(species, old["chosen"], new["chosen"]):
        pairs.append({"species": sp, "old": a, "new": b, "same_choice": a["feature_scaling"] == b["feature_scaling"]
                      and abs(a["alpha"] - b["alpha"]) <= 1e-12 * a["alpha"],
                      "mae_relative_difference": abs(a["mae"] - b["mae"]) / abs(a["mae"])})
    result = {"n_files": len(files), "species": list(species), "config": config, "old": old, "new": new,
              "pairs": pairs, "speed_up_cpu": old["cpu_s"] / new["cpu_s"], "speed_up_wall": old["wall_s"] / new["wall_s"],
              "load_average": {"before": load_before, "after": load_after}}
    if exact:
        add_exact_reference(result, threads)
    return result


def gehlenite_files() -> list[str]:
    return sorted(str(p) for p in (shared_dir() / "data" / "gehlenite_efg" / "orig").glob("*.magres"))


def add_exact_reference(result: dict, threads: int) -> None:
    """Train the new side once more (not timed), comparing each chosen (scaling, α) with the
    exact reference (``bench/training_reference.py``); add to every pair the CV MAE of the
    reference and the relative error of the old and the new CV MAE against it."""
    exact = run_side(REPO, "exact", {**result["config"], "selection": PINNED_SELECTION}, gehlenite_files(), threads)
    result["exact"] = exact["exact"]
    for pair, comparison in zip(result["pairs"], exact["exact"]):
        reference = comparison["mae_exact"]
        same_pair = (comparison["feature_scaling"], comparison["alpha"]) == (pair["new"]["feature_scaling"],
                                                                            pair["new"]["alpha"])
        pair["exact"] = {"mae": reference, "same_pair": same_pair,
                         "old_relative_error": abs(pair["old"]["mae"] - reference) / reference,
                         "new_relative_error": abs(pair["new"]["mae"] - reference) / reference,
                         "new_eigh_relative_error": comparison["relative_error"]["eigh"],
                         "condition_number_max": max(f["condition_number"] for f in comparison["folds"])}


def default_oxides(threads: int) -> dict:
    return run_side(REPO, "new", {}, "mp_al27", threads)


def report_gehlenite(g: dict) -> None:
    """Markdown summary of the gehlenite comparison."""
    if "pairs" not in g:
        print(f"gehlenite: {g}")
        return
    print(f"gehlenite EFG, pinned config: {OLD_COMMIT} CPU {g['old']['cpu_s']:.0f} s / wall "
          f"{g['old']['wall_s']:.0f} s / peak RSS {g['old']['peak_rss_mb']:.0f} MB; this checkout CPU "
          f"{g['new']['cpu_s']:.0f} s / wall {g['new']['wall_s']:.0f} s / peak RSS {g['new']['peak_rss_mb']:.0f} MB; "
          f"speed-up {g['speed_up_cpu']:.1f}x CPU, {g['speed_up_wall']:.1f}x wall")
    print("| species | old scaling, α | new scaling, α | same | CV MAE (exact) | old − new | old − exact | "
          "new − exact | max κ |\n|---|---|---|---|---|---|---|---|---|")
    for p in g["pairs"]:
        exact = p.get("exact", {})
        columns = [f"{exact[k]:.1e}" if k in exact else "–" for k in ("old_relative_error", "new_relative_error",
                                                                      "condition_number_max")]
        print(f"| {p['species']} | {p['old']['feature_scaling']}, {p['old']['alpha']:.3g} | "
              f"{p['new']['feature_scaling']}, {p['new']['alpha']:.3g} | {p['same_choice']} | "
              f"{exact.get('mae', float('nan')):.9e} | {p['mae_relative_difference']:.1e} | {' | '.join(columns)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("gehlenite", "default"), default=None)
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads of each run (default 2)")
    parser.add_argument("--species", default=",".join(DEFAULT_SPECIES),
                        help=f"gehlenite centre species (default {','.join(DEFAULT_SPECIES)}; all: {','.join(ALL_SPECIES)})")
    parser.add_argument("--exact-from", default=None, metavar="JSON",
                        help="only add the exact reference to the gehlenite pairs of an earlier results file")
    parser.add_argument("--no-exact", action="store_true",
                        help="skip the (untimed, long) exact reference; add it later with --exact-from")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from machine_report import machine_report

    result = {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": args.threads,
              "machine": machine_report(("numpy", "scipy", "ase"), threads={"blas": args.threads}),
              "load_average_start": os.getloadavg()}
    if args.only in (None, "default") and not args.exact_from:
        result["default_oxides"] = default_oxides(args.threads)
        d = result["default_oxides"]
        print(f"default config, {d['n_structures']} mp_al27 oxides ({d['n_atoms']} atoms): wall {d['wall_s']:.0f} s, "
              f"CPU {d['cpu_s']:.0f} s, peak RSS {d['peak_rss_mb']:.0f} MB; {len(d['models'])} models, "
              f"{len(d['skipped'])} skipped", flush=True)
    if args.exact_from:  # the exact reference for the gehlenite pairs of an earlier run
        result = json.loads(Path(args.exact_from).read_text())
        add_exact_reference(result["gehlenite"], args.threads)
        report_gehlenite(result["gehlenite"])
    elif args.only in (None, "gehlenite"):
        result["gehlenite"] = gehlenite(args.threads, args.species.split(","), exact=not args.no_exact)
        report_gehlenite(result["gehlenite"])
    result["load_average_end"] = os.getloadavg()
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_training_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1, default=float))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
