#!/usr/bin/env python
"""Whole-model prediction on the 14 400-atom Na2Si2O5 box: compiled evaluator vs commit 245de03.

Run from the repository root (package built in place)::

    PYTHONPATH=. python bench/bench_evaluator.py

Model (the paper's sizes): σiso by Nyström kernel ridge with 1000 (Na), 2000 (Si) and
4000 (O) inducing points plus an EFG λ = 2 model for each element, default descriptor
(r_cut 5 Å, n_max 6, l_max 4, σ 0.4 Å; Na, Si, O channels), synthetic parameters: the
inducing points are random atoms of the box (preprocessed power spectra), K_ZZ's Cholesky
factor is exact, the weights and EFG coefficients are random (timing does not depend on
the values). The OOD model is the σiso one, over the default pivot prefix
(``nmr_model.default_ood_rank``); its reference is a uniform sample.

Measured in one run, one BLAS thread, CPU time (``time.process_time``):

* before: ``NMRModel.predict`` of commit 245de03 (exported with ``git archive`` and built
  in a temporary folder, run in a subprocess on the same model written in its layout);
* GEMM floor: the products X·Zᵀ of the Nyström step alone (NumPy, float64 and float32), into a
  fresh result and (float64, stricter) into a reused, already written result buffer;
* after: ``NMRModel.predict`` (neighbour list + evaluator), float64 and float32 kernel
  blocks; the σiso step alone, with the OOD score, the EFG alone; two threads;
* paired: ``--pairs`` times (GEMM floor, whole prediction) back to back, per precision:
  the ratio of each pair and their median;
* load + evaluator creation (warm, hash check included);
* peak memory (subprocesses) at 14 400 and 115 200 atoms (the box 2×2×2).

``--float32-accuracy``: held-out σiso MAE with float32 kernel blocks against float64, on
real data, with settings fixed before this comparison (nothing tuned on it):

* Venetos 29Si: the 5 outer folds of ``bench/accuracy_venetos_si.py``; on each, σiso only,
  the settings its nested run chose for that fold (docs/accuracy_venetos.md, "Chosen
  hyper-parameters"), trained once on the fold's training side;
* ``mp_al27``, the 13 oxides: leave one crystal out, ``ase-mlnmr train``'s default σiso
  settings for Al and O (Gaussian kernel, 2000 inducing points asked).

Output: a Markdown table on stdout, JSON in ``bench/results/bench_evaluator.json``
(``bench_evaluator_float32_accuracy.json`` for ``--float32-accuracy``).
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from shared_data import shared_dir  # noqa: E402

sys.path.insert(0, str(HERE.parent / "tests"))
from legacy_model_files import save_in_245de03_layout  # noqa: E402

BOX = shared_dir() / "reference" / "bench_box_na2si2o5_14400.extxyz"
SIZES = {"Na": 1000, "Si": 2000, "O": 4000}
RESULTS = HERE / "results"
BEFORE_COMMIT = "245de03"


def cpu(function, repeats: int = 1):
    """(best CPU seconds, best wall seconds, last result) over ``repeats`` calls."""
    best_cpu = best_wall = np.inf
    result = None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        result = function()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return best_cpu, best_wall, result


def build_model(box):
    from ase_mlnmr.descriptors import LambdaSOAP, SOAP
    from ase_mlnmr.models.linear import EquivariantRidge
    from ase_mlnmr.models.nystrom import NystromKernelRidge
    from ase_mlnmr.nmr_model import NMRModel, PropertyModel, default_ood_rank

    rng = np.random.default_rng(0)
    species = ["Na", "Si", "O"]
    soap = SOAP(species)
    models, ood, reference, rank = [], {}, {}, {}
    for element, m in SIZES.items():
        X = soap.create(box, centres=element)
        x_mean, x_scale = X.mean(axis=0), np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        Xt = (X - x_mean) / x_scale
        Z = Xt[np.sort(rng.choice(len(Xt), m, replace=False))]
        length_scale = float(np.sqrt(X.shape[1]))
        z2 = np.einsum("ij,ij->i", Z, Z)
        kzz = np.exp(-np.maximum(z2[:, None] + z2[None, :] - 2 * Z @ Z.T, 0) / (2 * length_scale**2))
        chol = np.linalg.cholesky(kzz + 1e-6 * np.eye(m))
        arrays = {"inducing_points": Z, "inducing_indices": np.arange(m), "weights": rng.normal(size=(m, 1)) / m,
                  "chol_zz_packed": chol[np.tril_indices(m)], "x_mean": x_mean, "x_scale": x_scale,
                  "y_mean": np.array([300.0]), "y_std": np.array([20.0])}
        params = {"n_inducing": m, "length_scale": length_scale, "ridge": 1e-6, "kernel": "gaussian",
                  "target_ndim": 1, "residual_trace_per_sample": 0.0, "n_train": int(len(X))}
        nystrom = NystromKernelRidge.from_arrays(arrays, params)
        models.append(PropertyModel(element, "ms_iso", soap, nystrom))
        ood[element] = (soap, nystrom)
        rank[element] = default_ood_rank(m, X.shape[1])
        reference[element] = rng.uniform(0.0, 0.5, 1000)
        lam = LambdaSOAP(species, lam=2)
        p = lam.n_features
        efg = EquivariantRidge.from_arrays({"scaled_weights": rng.normal(size=p) / p, "feature_scale": np.ones(p),
                                            "target_scale": np.array(1.0)}, {"lam": 2})
        models.append(PropertyModel(element, "efg", lam, efg))
    return NMRModel(models, ood, ood_reference=reference, ood_rank=rank)


def build_before_tree(folder: Path) -> Path:
    tree = folder / "ase_mlnmr_245de03"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_COMMIT], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree, check=True,
                   capture_output=True)
    return tree


def worker(args) -> None:
    """Subprocess: load a model, predict on the box (repeated), print JSON."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    from ase.build import make_supercell
    from ase.io import read

    from ase_mlnmr.nmr_model import NMRModel

    box = read(BOX)
    if args.repeat > 1:
        box = make_supercell(box, np.diag([args.repeat] * 3))
    model = NMRModel.load(args.worker)
    if hasattr(model, "evaluator"):   # built before predicting (245de03 has none)
        model.evaluator()
    rss_before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:   # reset the peak RSS (VmHWM) to the current RSS
        f.write("5")
    seconds, wall, _ = cpu(lambda: model.predict(box), repeats=args.worker_repeats)
    print(json.dumps({"cpu_s": seconds, "wall_s": wall, "rss_before_MiB": rss_before / 1024,
                      "peak_MiB": _status_kib("VmHWM") / 1024, "atoms": len(box)}))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def run_worker(model_path: Path, pythonpath: Path, repeat: int = 1, repeats: int = 1) -> dict:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(model_path),
                             "--repeat", str(repeat), "--worker-repeats", str(repeats)],
                            capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def auroc_experiment(box, n_inducing: int = 2000) -> dict:
    """Does the residual over the leading pivots separate held-out from out-of-domain O
    atoms as well as the full residual? O atoms of the half box x < 0.5 (fractional) train
    a Nyström basis; in-domain: O atoms of the other half; out of domain: the same atoms
    after compressing the box by 3 % / 5 % and rattling by 0.03 / 0.05 Å (seed 0)
    (``ood_prefix_check.prefix_auroc``)."""
    from ase_mlnmr.nmr_model import default_ood_rank
    from ood_prefix_check import prefix_auroc

    return prefix_auroc(box, "O", n_inducing, axis=0, perturbations=((0.97, 0.03), (0.95, 0.05)), seed=0,
                        ranks=lambda m, d: {"rule": default_ood_rank(m, d), "m/4": m // 4, "m/8": m // 8})


#: σiso settings the nested run of bench/accuracy_venetos_si.py chose per outer fold
#: (docs/accuracy_venetos.md, "Chosen hyper-parameters"): one descriptor for all folds.
VENETOS_DESCRIPTOR = {"r_cut": 4.5, "n_max": 4, "l_max": 8, "sigma": 0.4, "mixing_channels": 8}
VENETOS_ISO = [  # (ζ, n_inducing, ridge) of the dot-product kernel, folds 0-4
    (1, 150, 0.01), (3, 2000, 0.03), (1, 300, 0.01), (1, 300, 0.01), (1, 150, 0.003)]


def held_out_ms_iso(model, dataset, structures, element: str) -> tuple[np.ndarray, dict]:
    """(reference σiso (ppm) of ``element``'s sites in ``structures``, {precision: predicted})."""
    reference, predicted = [], {"float64": [], "float32": []}
    selection = dataset.select("ms", element)
    for s in structures:
        atoms = selection.atom_index[selection.structure_index == s]
        tensors = selection.tensors[selection.structure_index == s]
        if len(atoms) == 0:
            continue
        reference.append(np.trace(tensors, axis1=1, axis2=2) / 3.0)
        for name, single in (("float64", False), ("float32", True)):
            prediction = model.predict(dataset.structures[s], unknown_species="skip", outputs=("shielding",),
                                       single_precision=single)
            predicted[name].append(prediction.ms_iso[atoms])
    return np.concatenate(reference), {k: np.concatenate(v) for k, v in predicted.items()}


def mae_change(reference: np.ndarray, predicted: dict) -> dict:
    """Held-out MAE (ppm) in float64 and float32, relative change, largest |Δσiso| (ppm)."""
    mae = {k: float(np.mean(np.abs(v - reference))) for k, v in predicted.items()}
    return {"n_sites": int(len(reference)), "mae64_ppm": mae["float64"], "mae32_ppm": mae["float32"],
            "relative_change": (mae["float32"] - mae["float64"]) / mae["float64"],
            "max_abs_diff_ppm": float(np.max(np.abs(predicted["float32"] - predicted["float64"])))}


def float32_accuracy() -> dict:
    """Held-out σiso MAE, float32 against float64 kernel blocks (module doc)."""
    from accuracy_venetos_si import N_OUTER, SEED, Data, our_config

    from ase_mlnmr.examples import load_mp_al27
    from ase_mlnmr.nmr_model import NMRModel

    result = {"venetos_si": {"folds": []}, "mp_al27": {}}
    data = Data(SEED)
    pooled_reference, pooled = [], {"float64": [], "float32": []}
    for fold in range(N_OUTER):
        zeta, n_inducing, ridge = VENETOS_ISO[fold]
        iso = {"regressor": "nystrom", "kernel": "dot_product", "zeta": zeta, "n_inducing": n_inducing, "ridge": ridge}
        train, test = data.outer(fold)[:2]
        c0 = time.process_time()
        model = NMRModel.train(data.dataset, our_config(data.species, VENETOS_DESCRIPTOR, iso, 1.0, ("ms_iso",)),
                               progress=False, structure_indices=train)
        reference, predicted = held_out_ms_iso(model, data.dataset, test, "Si")
        result["venetos_si"]["folds"].append({"fold": fold, **mae_change(reference, predicted),
                                              "cpu_s": time.process_time() - c0})
        pooled_reference.append(reference)
        for k in pooled:
            pooled[k].append(predicted[k])
        print(json.dumps(result["venetos_si"]["folds"][-1]), flush=True)
    result["venetos_si"]["pooled"] = mae_change(np.concatenate(pooled_reference),
                                                {k: np.concatenate(v) for k, v in pooled.items()})
    oxides = load_mp_al27()
    species = sorted({s for atoms in oxides.structures for s in atoms.get_chemical_symbols()})
    config = {"neighbour_species": species, "species": {e: {"properties": ["ms_iso"]} for e in ("Al", "O")}}
    held_out = {e: ([], {"float64": [], "float32": []}) for e in ("Al", "O")}
    for crystal in range(len(oxides)):
        model = NMRModel.train(oxides, config, progress=False,
                               structure_indices=np.delete(np.arange(len(oxides)), crystal))
        for element, (references, predictions) in held_out.items():
            reference, predicted = held_out_ms_iso(model, oxides, [crystal], element)
            references.append(reference)
            for k in predictions:
                predictions[k].append(predicted[k])
    for element, (references, predictions) in held_out.items():
        result["mp_al27"][element] = mae_change(np.concatenate(references),
                                                {k: np.concatenate(v) for k, v in predictions.items()})
    return result


def floor_products(matrices: dict, outputs: dict | None = None) -> list:
    """X·Zᵀ per element (the GEMM floor); into ``outputs`` (preallocated and already written
    once) when given: the GEMM alone, without the page faults of a fresh ~256 MiB result."""
    if outputs is None:
        return [X @ Z.T for X, Z in matrices.values()]
    return [np.matmul(X, Z.T, out=outputs[e]) for e, (X, Z) in matrices.items()]


def reused_outputs(matrices: dict) -> dict:
    """One written result buffer per element for :func:`floor_products`."""
    return {e: np.ones((len(X), len(Z)), dtype=X.dtype) for e, (X, Z) in matrices.items()}


def paired_ratios(model, box, mats: dict, mats32: dict, pairs: int) -> dict:
    """Whole prediction / GEMM floor, each pair measured back to back (floor, prediction),
    ``pairs`` times per precision: on a loaded machine the load changes less within a pair
    than between the separate best-of timings above."""
    out = {}
    for name, matrices, single in (("float64", mats, False), ("float32", mats32, True)):
        floors, reused_floors, predictions = [], [], []
        buffers = reused_outputs(matrices)
        for _ in range(pairs):
            floors.append(cpu(lambda: floor_products(matrices))[0])
            reused_floors.append(cpu(lambda: floor_products(matrices, buffers))[0])
            predictions.append(cpu(lambda: model.predict(box, single_precision=single))[0])
        ratios = np.array(predictions) / np.array(floors)
        reused_ratios = np.array(predictions) / np.array(reused_floors)
        out[name] = {"floor_cpu_s": floors, "predict_cpu_s": predictions, "ratios": ratios.tolist(),
                     "median_ratio": float(np.median(ratios)), "reused_floor_cpu_s": reused_floors,
                     "reused_ratios": reused_ratios.tolist(), "median_reused_ratio": float(np.median(reused_ratios))}
    return out


def thread_balance(model, box) -> dict:
    """CPU time of each of two Python threads that run the evaluator (nogil) on half of every
    element's centres, from the thread clocks: total / max is the speed-up two free cores
    would give (a loaded machine cannot show it in wall time)."""
    import threading

    from ase_mlnmr.core.neighbours import neighbour_list_from_atoms

    evaluator = model.evaluator()
    nl = neighbour_list_from_atoms(box, evaluator.cutoff)
    halves = [[], []]
    for z in np.unique(box.numbers):
        centres = np.flatnonzero(box.numbers == z)
        halves[0].append(centres[: len(centres) // 2])
        halves[1].append(centres[len(centres) // 2:])
    jobs = []
    for half in halves:
        centres = np.concatenate(half)
        entries = np.concatenate([np.arange(nl.offsets[i], nl.offsets[i + 1]) for i in centres])
        offsets = np.concatenate([[0], np.cumsum(np.diff(nl.offsets)[centres])])
        jobs.append((box.numbers[centres], offsets, nl.vectors[entries], box.numbers[nl.neighbours[entries]]))
    seconds = [0.0, 0.0]

    def run(k):
        t0 = time.thread_time()
        evaluator.predict(*jobs[k])
        seconds[k] = time.thread_time() - t0

    wall0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall0
    return {"thread_cpu_s": seconds, "wall_s": wall, "ideal_speedup": sum(seconds) / max(seconds)}


def summary(results: dict) -> dict:
    """The issue's targets from one run (CPU s): float64 whole prediction against the steady
    GEMM floor (reused result buffer), best/best and per back-to-back pair; float32; OOD share
    of the σiso step; two threads (one-thread CPU / two-thread wall, and from the thread clocks)."""
    after, floor, paired = results["after"], results["gemm_floor"], results["paired"]
    reused = np.array(paired["float64"]["reused_ratios"])
    shielding = after["shielding"]["cpu_s"]
    return {
        "uptime": [results["uptime_start"], results["uptime_end"]],
        "float64_cpu_s": after["all_float64"]["cpu_s"],
        "steady_floor_cpu_s": floor["float64_reused_output_cpu_s"],
        "float64_over_steady_floor_best_over_best": after["all_float64"]["cpu_s"] / floor["float64_reused_output_cpu_s"],
        "float64_over_steady_floor_pairs_median": float(np.median(reused)),
        "float64_over_steady_floor_pairs_range": [float(reused.min()), float(reused.max())],
        "float32_cpu_s": after["all_float32"]["cpu_s"],
        "ood_share_of_sigma_iso_step": (after["shielding_ood"]["cpu_s"] - shielding) / shielding,
        "efg_only_cpu_s": after["efg"]["cpu_s"],
        "two_threads_speedup_wall": after["all_float64"]["cpu_s"] / after["all_float64_2threads"]["wall_s"],
        "two_threads_speedup_thread_clocks": results["two_threads_balance"]["ideal_speedup"],
        "load_and_create_cpu_s": results["load_and_create"]["cpu_s"],
        "peak_increase_MiB": {n: m["peak_MiB"] - m["rss_before_MiB"] for n, m in results["memory"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker-repeats", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for the in-process timings")
    parser.add_argument("--pairs", type=int, default=5, help="back-to-back (GEMM floor, prediction) pairs")
    parser.add_argument("--no-before", action="store_true", help="skip the 245de03 column")
    parser.add_argument("--auroc-only", action="store_true", help="only the OOD prefix AUROC experiment")
    parser.add_argument("--float32-accuracy", action="store_true",
                        help="only the held-out MAE of float32 against float64 kernel blocks on real data")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    from ase.io import read

    from ase_mlnmr.nmr_model import NMRModel

    RESULTS.mkdir(exist_ok=True)
    results = {"uptime_start": os.popen("uptime").read().strip()}
    box = read(BOX)
    if args.auroc_only:
        print(json.dumps(auroc_experiment(box), indent=2))
        return
    if args.float32_accuracy:
        results.update(float32_accuracy())
        results["uptime_end"] = os.popen("uptime").read().strip()
        (RESULTS / "bench_evaluator_float32_accuracy.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
        return
    t0 = time.perf_counter()
    model = build_model(box)
    results["model_build_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = model.save(tmp / "model.npz")
        results["file_MiB"] = path.stat().st_size / 2**20
        if not args.no_before:
            old = tmp / "model_245de03.npz"
            save_in_245de03_layout(model, old)
            results["file_245de03_MiB"] = old.stat().st_size / 2**20
            tree = build_before_tree(tmp)
            results["before"] = run_worker(old, tree)
            results["before_load"] = json.loads(subprocess.run(
                [sys.executable, "-c", "import time, json; from ase_mlnmr.nmr_model import NMRModel; "
                 f"NMRModel.load(r'{old}'); t = time.perf_counter(); NMRModel.load(r'{old}'); "
                 "print(json.dumps({'wall_s': time.perf_counter() - t}))"],
                capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(tree)), check=True).stdout)

        # load + evaluator creation, warm (second time)
        NMRModel.load(path).evaluator()
        load_cpu, load_wall, loaded = cpu(lambda: NMRModel.load(path).evaluator(), repeats=2)
        results["load_and_create"] = {"cpu_s": load_cpu, "wall_s": load_wall}

        # GEMM floor: X·Zᵀ of the Nyström step alone
        rng = np.random.default_rng(1)
        counts = {e: int(np.sum(np.array(box.get_chemical_symbols()) == e)) for e in SIZES}
        D = model.models[("O", "ms_iso")].regressor.inducing_points_.shape[1]
        mats = {e: (rng.normal(size=(counts[e], D)), rng.normal(size=(m, D))) for e, m in SIZES.items()}
        gemm64 = cpu(lambda: floor_products(mats), repeats=args.repeats)[0]
        buffers = reused_outputs(mats)
        gemm64_reused = cpu(lambda: floor_products(mats, buffers), repeats=args.repeats)[0]
        mats32 = {e: (X.astype(np.float32), Z.astype(np.float32)) for e, (X, Z) in mats.items()}
        gemm32 = cpu(lambda: floor_products(mats32), repeats=args.repeats)[0]
        results["gemm_floor"] = {"float64_cpu_s": gemm64, "float64_reused_output_cpu_s": gemm64_reused,
                                 "float32_cpu_s": gemm32,
                                 "gflop": sum(2 * counts[e] * m * D for e, m in SIZES.items()) / 1e9}

        model = NMRModel.load(path)
        timings = {}
        for label, kwargs in (
            ("all_float64", {}),
            ("all_float32", {"single_precision": True}),
            ("shielding", {"outputs": ("shielding",)}),
            ("shielding_ood", {"outputs": ("shielding", "ood")}),
            ("efg", {"outputs": ("efg",)}),
            ("all_float64_2threads", {"n_threads": 2}),
            ("all_float32_2threads", {"single_precision": True, "n_threads": 2}),
        ):
            seconds, wall, prediction = cpu(lambda: model.predict(box, **kwargs), repeats=args.repeats)
            timings[label] = {"cpu_s": seconds, "wall_s": wall}
            if label == "all_float64":
                reference = prediction
            if label == "all_float32":
                scale = np.nanstd(reference.ms_iso)
                timings[label]["max_abs_ms_iso_diff_ppm"] = float(np.nanmax(np.abs(prediction.ms_iso -
                                                                                 reference.ms_iso)))
                timings[label]["ms_iso_std_ppm"] = float(scale)
                timings[label]["max_abs_ood_diff"] = float(np.nanmax(np.abs(prediction.ood_residual -
                                                                            reference.ood_residual)))
                timings[label]["efg_equal"] = bool(np.array_equal(prediction.efg, reference.efg))
        results["after"] = timings
        results["paired"] = paired_ratios(model, box, mats, mats32, args.pairs)
        results["ood_ranks"] = {e: model.evaluator().ood_rank(e) for e in SIZES}
        results["two_threads_balance"] = thread_balance(model, box)
        results["memory"] = {str(n): run_worker(path, ROOT, repeat=n) for n in (1, 2)}
    results["ood_auroc"] = auroc_experiment(box)
    results["uptime_end"] = os.popen("uptime").read().strip()
    results["summary"] = summary(results)
    (RESULTS / "bench_evaluator.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
