#!/usr/bin/env python
"""Gehlenite EFG acceptance benchmark: ours (NMRModel, λ = 2 EFG models) against a
featomic 0.6.7 λ-SOAP + linear ridge baseline, by nested cross-validation on real data.

Run from the repository root::

    PYTHONPATH=. python bench/accuracy_gehlenite_efg.py --quick   # smoke test, ~2-4 min
    PYTHONPATH=. python bench/accuracy_gehlenite_efg.py           # full protocol (resumable)
    ASE_MLNMR_BENCH_BLAS_THREADS=2 PYTHONPATH=. python bench/accuracy_gehlenite_efg.py  # search on 2 BLAS threads

Data: the 24 CASTEP gehlenite cells of ``<shared>/data/gehlenite_efg/orig/*.magres``
(288 atoms each, EFG in atomic units for every atom), ``<shared>`` being
``$ASE_MLNMR_SHARED`` or ``shared/`` beside the repository. The data are not part of the
repository and no model trained on them is written anywhere; without them the script
says so and exits with status 0.

Protocol (see ``docs/accuracy_gehlenite.md``):

* outer 5-fold CV grouped by cell: with the file names sorted, cell i (0-based) is in
  test fold ``i % 5``;
* inner CV on the training side only: grouped 4-fold, the inner folds being the other
  four outer folds (so for outer fold k the model trained for the pair {k, j} is scored
  on fold j; the ten pair models are shared by all outer folds);
* hyper-parameters per species and outer fold by a greedy coordinate search over the
  stages of :data:`GRIDS` (one parameter at a time, starting from a default; the ridge α
  is searched at every grid point by a downhill walk on the half-decade grid
  :data:`ALPHAS`); the score is the inner-CV MAE of the six independent Cartesian EFG
  components (a.u.);
* the chosen model is fitted on all training cells and scored on the test cells with
  ``ase_mlnmr.training.evaluation.efg_metrics`` (both methods): component MAE (a.u. and % of the
  test-side span), CQ and η MAE (27Al, 17O, 43Ca), Harper C̃Q / η̃ MAE and mean q̃;
* learning curve on outer fold 0 with that fold's hyper-parameters;
* wall times of the final training and prediction of both methods.

Ours: ``NMRModel.train`` (config: :func:`ours_config`), predictions through
``NMRModel.predict``; the search solves the same ridge from cached λ-SOAP features.
Baseline: ``featomic_baseline.py``; start-up self-checks (bases, equivariance, the search's
solvers against ``EquivariantRidge``, ``NMRModel.predict`` and scikit-learn):
``gehlenite_checks.py``; tables and figure: ``gehlenite_report.py``. The search is the
package's :class:`ase_mlnmr.training.nested_ridge.NestedRidgeCV`; every inner-CV score,
final fit and learning-curve point is cached in ``bench/results/gehlenite_cache/`` as soon
as it is computed, ``--budget-minutes`` stops the run cleanly (exit status 3) and a rerun
continues; ``--fresh`` empties the cache first.

Output: JSON in ``bench/results/`` (gitignored), a Markdown table on stdout and the
learning-curve figure ``docs/figures/gehlenite_learning_curve.png`` (``--quick`` writes its
figure to ``bench/results/`` instead).
"""
from __future__ import annotations

import os

# one thread everywhere; the search's linear algebra (not the timed final fits and
# predictions of featomic/our core) may use more: ASE_MLNMR_BENCH_BLAS_THREADS
SEARCH_BLAS_THREADS = os.environ.get("ASE_MLNMR_BENCH_BLAS_THREADS", "1")
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_variable] = SEARCH_BLAS_THREADS if _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") else "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ase_mlnmr.core.spherical_tensors import L2_BASIS  # noqa: E402
from ase_mlnmr.nmr_model import regression_targets  # noqa: E402
from ase_mlnmr.training.nested_ridge import NestedRidgeCV, PairedFoldRidge  # noqa: E402
from ase_mlnmr.training.search_budget import Budget, BudgetExceeded, ResultCache, canonical_json, short_hash  # noqa: E402
from featomic_baseline import (FeatomicFeatures, featomic_basis, featomic_cartesian_to_spherical,  # noqa: E402
                               fit_and_score_baseline)
from gehlenite_checks import self_checks  # noqa: E402
from gehlenite_report import METHOD_LABELS, learning_curve_figure, write_results  # noqa: E402
from machine_report import machine_report  # noqa: E402
from shared_data import shared_dir  # noqa: E402

SPECIES = ("Al", "O", "Ca", "Si")
NEIGHBOURS = ("O", "Al", "Si", "Ca")  # the order NMRModel.train uses (atomic number)
METHODS = tuple(METHOD_LABELS)  # "ours", "baseline"
N_OUTER = 5
LAMBDA = 2
CACHE_VERSION = 2  # 2: results through ResultCache.get_or_compute
# ridge α grid: half decades; ours: α of EquivariantRidge on its scaled problem;
# baseline: α relative to the mean squared (scaled) feature value of the training set
ALPHAS = [float(10.0 ** (e / 2)) for e in range(-16, 5)]  # 1e-8 .. 1e2
ALPHA_START_INDEX = 8  # 1e-4
LEARNING_CURVE_FOLD = 0
LEARNING_CURVE_SIZES = (4, 8, 12, 16, 19)
QUICK_LEARNING_CURVE_SIZES = (4, 19)

# ------------------------------------------------------------------------ grids
# ours: r_cut, n_max, l_max, σ (Å) of λ-SOAP, two-body terms, ridge scaling "rms" (per_feature)
# or "none" (global); baseline: featomic hypers (featomic_baseline.featomic_hypers), scaling
OURS_START = {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.4, "two_body": True}
BASELINE_START = {"cutoff": 5.0, "smoothing": 0.5, "max_radial": 5, "max_angular": 4, "width": 0.4, "scale": "none"}
OURS_BRIEF = [("r_cut", [4.0, 5.0, 6.0]), ("n_max", [4, 6, 8]), ("sigma", [0.3, 0.4, 0.6]), ("two_body", [True, False])]
BASELINE_BRIEF = [("scale", ["none", "rms"]), ("cutoff", [4.0, 5.0, 6.0]), ("smoothing", [0.5, "cutoff"]),
                  ("max_radial", [3, 5, 7]), ("max_angular", [2, 3, 4]), ("width", [0.3, 0.4, 0.6])]
OURS_SCALE = [("scale", ["rms", "none"])]
CUTOFF_TO_7 = [4.0, 5.0, 6.0, 7.0]
# neighbour weight 1 / (1 + (d/r0)^m) (Willatt et al. 2018, doi:10.1039/C8CP05921G; ours: radial_scaling,
# featomic: Willatt2018, rate 1)
RADIAL_SI = [("radial_scaling", [None, {"r0": 2.0, "exponent": 4}, {"r0": 3.0, "exponent": 4}], ["Si"])]
OURS_TO_7, BASELINE_TO_7 = OURS_BRIEF + [("r_cut", CUTOFF_TO_7)], BASELINE_BRIEF + [("cutoff", CUTOFF_TO_7)]


def make_grid(ours: list, baseline: list, ours_start: dict = OURS_START, baseline_start: dict = BASELINE_START) -> dict:
    return {"ours": {"start": ours_start, "stages": ours}, "baseline": {"start": baseline_start, "stages": baseline}}


GRIDS = {  # each grid grew from the one before (docs/accuracy_gehlenite.md)
    "brief": make_grid(OURS_BRIEF + OURS_SCALE, BASELINE_BRIEF),
    "extended": make_grid(OURS_TO_7 + OURS_SCALE, BASELINE_TO_7),
    "angular": make_grid(OURS_TO_7 + OURS_SCALE + [("l_max", [4, 6])], BASELINE_TO_7 + [("max_angular", [4, 6])]),
    # for Si only: the species the angular grid left ours behind (the O stage did not fit the time)
    "radial-si": make_grid(OURS_TO_7 + OURS_SCALE + [("l_max", [4, 6])] + RADIAL_SI,
                           BASELINE_TO_7 + [("max_angular", [4, 6])] + RADIAL_SI),
    # the default: ours' scaling stage first, as the baseline's (the same stages in the same order)
    "scale-first": make_grid(OURS_SCALE + OURS_TO_7 + [("l_max", [4, 6])] + RADIAL_SI,
                             BASELINE_TO_7 + [("max_angular", [4, 6])] + RADIAL_SI),
}
QUICK_GRID = make_grid([("r_cut", [4.0, 5.0])] + OURS_SCALE, [("cutoff", [4.0, 5.0])], {**OURS_START, "n_max": 4},
                       {**BASELINE_START, "max_radial": 3})


# ------------------------------------------------------------------------- data
def data_files() -> list[Path]:
    folder = shared_dir() / "data" / "gehlenite_efg" / "orig"
    return sorted(folder.glob("*.magres"), key=lambda p: p.name)


def outer_fold_of_cells(n_cells: int) -> np.ndarray:
    return np.arange(n_cells) % N_OUTER


def species_centres(atoms, species: str) -> np.ndarray:
    return np.flatnonzero(np.array(atoms.get_chemical_symbols()) == species)


class Context:
    """The data set, folds, per-species reference EFG (a.u.) per cell, targets in both bases."""

    def __init__(self, files: list[Path]) -> None:
        from ase_mlnmr.training.dataset import read_tensor_dataset

        self.dataset = read_tensor_dataset([str(f) for f in files], properties=["efg"])
        self.n_cells = len(self.dataset)
        self.fold_of_cell = outer_fold_of_cells(self.n_cells)
        self.reference = {sp: [tensors[np.flatnonzero(mask & (np.array(atoms.get_chemical_symbols()) == sp))]
                               for atoms, tensors, mask in zip(self.dataset.structures, self.dataset.tensors["efg"],
                                                               self.dataset.masks["efg"])] for sp in SPECIES}
        self.targets = {
            "ours": {sp: [regression_targets("efg", t) for t in self.reference[sp]] for sp in SPECIES},
            "baseline": {sp: [featomic_cartesian_to_spherical(t) for t in self.reference[sp]] for sp in SPECIES},
        }
        self.basis = {"ours": np.array(L2_BASIS), "baseline": featomic_basis()}

    def cells_of_folds(self, folds) -> list[int]:
        return [int(c) for c in np.flatnonzero(np.isin(self.fold_of_cell, list(folds)))]

    def problem(self, method: str, species: str, cell_features: list[np.ndarray], fold_of_cell) -> PairedFoldRidge:
        """The ridge problem of one species over the folds ``fold_of_cell`` (one id per cell)."""
        folds = np.concatenate([np.full(len(x), fold_of_cell[c]) for c, x in enumerate(cell_features)])
        return PairedFoldRidge(np.concatenate(cell_features), np.concatenate(self.targets[method][species]), folds,
                               np.concatenate(self.reference[species]), self.basis[method])


# ------------------------------------------------------------- settings, search
def ours_descriptor(features: dict, two_body: bool = True):
    from ase_mlnmr.descriptors import LambdaSOAP

    return LambdaSOAP(list(NEIGHBOURS), r_cut=float(features["r_cut"]), n_max=int(features["n_max"]),
                      l_max=int(features["l_max"]), sigma=float(features["sigma"]), lam=LAMBDA, two_body=two_body,
                      radial_scaling=features.get("radial_scaling"))


def split_setting(method: str, setting: dict) -> tuple[dict, dict]:
    """(feature parameters, variant parameters: columns and scaling only) of a full setting."""
    keys = ("two_body", "scale") if method == "ours" else ("scale",)
    features = {k: v for k, v in setting.items() if k not in keys and not (k == "radial_scaling" and v is None)}
    variant = {k: setting[k] for k in keys if k in setting}
    if method == "ours" and variant.get("scale") == "rms":
        del variant["scale"]  # the default: same cache entries as before the scaling stage existed
    return features, variant


def ridge_of_variant(features: dict, variant: dict) -> tuple[slice, str]:
    """(columns, feature scaling): ours' two-body columns (species × n_max) come first;
    "rms" is per-feature scaling, "none" one global RMS (α relative to the mean square)."""
    start = 0 if variant.get("two_body", True) else len(NEIGHBOURS) * int(features["n_max"])
    return slice(start, None), "per_feature" if variant.get("scale", "rms") == "rms" else "global"


def inner_cv(method: str, context: Context, cache: ResultCache, budget: Budget, log=print) -> NestedRidgeCV:
    """The package's nested inner-CV scorer on this method's features (featomic computes all
    species of a setting at once: kept until each species has been used)."""
    structures, featomic_cells = context.dataset.structures, {}

    def build(species: str, features: dict) -> PairedFoldRidge:
        if method == "ours":
            descriptor = ours_descriptor(features)
            cells = [descriptor.create(a, centres=species_centres(a, species)) for a in structures]
        else:
            if featomic_cells.get("setting") != features or species not in featomic_cells:
                calculator = FeatomicFeatures(features, NEIGHBOURS)
                per_cell = [calculator.cell(atoms) for atoms in structures]
                featomic_cells.clear()
                featomic_cells.update({"setting": features, **{sp: [c[sp] for c in per_cell] for sp in SPECIES}})
            cells = featomic_cells.pop(species)
        return context.problem(method, species, cells, context.fold_of_cell)

    return NestedRidgeCV(f"inner_{method}", build, lambda setting: split_setting(method, setting), ridge_of_variant,
                         ALPHAS, N_OUTER, cache, budget, min_gain=1e-3, log=log)


# -------------------------------------------------------------------- final fits
def ours_config(chosen: dict) -> dict:
    """NMRModel.train config from the chosen settings {species: {"setting", "alpha"}}."""
    species = {}
    for sp, entry in chosen.items():
        s = entry["setting"]
        species[sp] = {
            "properties": ["efg"],
            "descriptor": {"r_cut": float(s["r_cut"]), "n_max": int(s["n_max"]), "l_max": int(s["l_max"]),
                           "sigma": float(s["sigma"]), "radial_scaling": s.get("radial_scaling")},
            "efg": {"alpha": float(entry["alpha"]), "two_body": bool(s["two_body"]),
                    "feature_scaling": "global" if s.get("scale", "rms") == "none" else "per_feature"},
        }
    return {"species": species}


def fit_and_score_ours(context: Context, chosen: dict, train_cells: list[int], test_cells: list[int]) -> dict:
    from ase_mlnmr.nmr_model import NMRModel
    from ase_mlnmr.training.evaluation import collect_predictions, efg_metrics

    config = ours_config(chosen)
    t0 = time.perf_counter()
    model = NMRModel.train(context.dataset, config, progress=False, structure_indices=train_cells)
    t_train = time.perf_counter() - t0
    test = context.dataset.subset(test_cells)
    t0 = time.perf_counter()
    pairs = collect_predictions(model, test)["efg"]
    t_predict = time.perf_counter() - t0
    t0 = time.perf_counter()  # the EFG part alone (contracted λ = 2 path, neighbour list included), no OOD models
    for atoms in test.structures:
        for sp in SPECIES:
            model.models[(sp, "efg")].predict(atoms, species_centres(atoms, sp))
    t_predict_efg = time.perf_counter() - t0
    return {"metrics": efg_metrics(pairs, model.isotopes),
            "seconds": {"train_total": t_train, "predict_total": t_predict, "predict_efg_only": t_predict_efg},
            "config": config, "n_train_cells": len(train_cells), "n_test_atoms": int(len(pairs.elements))}


def cached_fit(cache: ResultCache, budget: Budget, label: str, method: str, context: Context, chosen: dict,
               train_cells: list[int], test_cells: list[int], log=print) -> dict:
    """Fit and score one method on one thread; cached under a name made from what is fitted
    (chosen settings, training and test cells), so grids that choose the same settings share it."""
    key = canonical_json({"chosen": {sp: {"setting": c["setting"], "alpha": c["alpha"]} for sp, c in chosen.items()},
                          "train": train_cells, "test": test_cells})

    def fit() -> dict:
        from threadpoolctl import threadpool_limits

        t0 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):  # timed: one thread, as the search may not be
            if method == "ours":
                result = fit_and_score_ours(context, chosen, train_cells, test_cells)
            else:
                features_of = {sp: split_setting("baseline", chosen[sp]["setting"])[0] for sp in SPECIES}
                result = fit_and_score_baseline(context.dataset.structures, context.reference, chosen, features_of,
                                                train_cells, test_cells, NEIGHBOURS)
        log(f"  {label}: {time.perf_counter() - t0:.0f} s")
        return result

    return cache.get_or_compute(f"fit_{method}_{short_hash(key)}", key, fit, budget, f"the fit {label}")


# ------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny grids, outer fold 0 only, 2-point learning curve")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="scale-first",
                        help="stages of the search (GRIDS; how they grew: docs/accuracy_gehlenite.md)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="stop cleanly (exit 3) after this many minutes; rerun to continue from the cache")
    parser.add_argument("--fresh", action="store_true", help="empty the cache first")
    parser.add_argument("--no-learning-curve", action="store_true")
    parser.add_argument("--skip-checks", action="store_true", help="skip the start-up self-checks")
    parser.add_argument("--probe", nargs=2, metavar=("METHOD", "SETTING_JSON"),
                        help="only score one setting (JSON, all keys of the method's grid start) on the inner CV "
                             "of --probe-folds, for investigations beyond the grid; e.g. --probe ours "
                             "'{\"r_cut\": 7, \"n_max\": 8, \"l_max\": 4, \"sigma\": 0.4, \"two_body\": true}' "
                             "(ours also takes \"scale\": \"none\")")
    parser.add_argument("--probe-folds", default="0", help="outer folds for --probe (comma separated)")
    parser.add_argument("--probe-species", default=",".join(SPECIES), help="species for --probe")
    args = parser.parse_args(argv)
    if args.probe:
        method, setting = args.probe[0], json.loads(args.probe[1])
        start = set(GRIDS["brief"].get(method, {}).get("start", {None}))
        if not start <= set(setting) <= start | {stage[0] for stage in GRIDS["scale-first"][method]["stages"]}:
            parser.error("--probe needs the method 'ours' or 'baseline' and the keys of its grid start")
        args.probe = (method, setting)
    return args


def probe(method: str, setting: dict, folds: list[int], species: list[str], context: Context, cache: ResultCache,
          budget: Budget, log=print) -> dict:
    """Inner-CV score (α walked) of one setting beyond the grid: {species: {fold: {inner_mae, alpha, alpha_curve}}}."""
    inner, result = inner_cv(method, context, cache, budget, log), {}
    try:
        for sp, k in [(sp, k) for sp in species for k in folds]:
            info = result.setdefault(sp, {})[str(k)] = inner((sp, k), setting, ALPHA_START_INDEX)[2]
            log(f"  probe {method} {sp} fold {k}: inner MAE {1e3 * info['inner_mae']:.4f}e-3 a.u. "
                f"at alpha {info['alpha']:.3g}")
    finally:
        inner.close()
    return result


def search_and_fit(grid: dict, folds: list[int], sizes: Sequence[int], context: Context, cache: ResultCache,
                   budget: Budget, log=print) -> tuple[dict, dict, dict, dict, dict]:
    """The protocol: per method, the staged search per species and outer fold; the final fit
    of every outer fold; the learning curve (nested random subsets of the training cells of
    :data:`LEARNING_CURVE_FOLD`). Returns (inner-CV scorers, chosen, history, final, curve)."""
    inner = {m: inner_cv(m, context, cache, budget, log) for m in METHODS}
    chosen, history = {}, {}
    for method in METHODS:
        log(f"hyper-parameter search: {method}")
        chosen[method], history[method] = inner[method].search(SPECIES, folds, grid[method]["start"],
                                                               grid[method]["stages"], ALPHA_START_INDEX)

    def fit(method: str, k: int, train_cells: list[int], label: str) -> dict:
        picked = {sp: chosen[method][sp][str(k)] for sp in SPECIES}
        return cached_fit(cache, budget, label, method, context, picked, train_cells, context.cells_of_folds([k]), log)

    final: dict = {m: {} for m in METHODS}
    for k in folds:
        for method in METHODS:
            train = [c for c in range(context.n_cells) if c not in context.cells_of_folds([k])]
            final[method][k] = fit(method, k, train, f"final {method} fold {k}")
    curve: dict = {m: {} for m in METHODS}
    pool = [c for c in range(context.n_cells) if c not in context.cells_of_folds([LEARNING_CURVE_FOLD])]
    order = list(np.random.default_rng(0).permutation(pool))
    for n in sizes:
        for method in METHODS:
            curve[method][str(n)] = fit(method, LEARNING_CURVE_FOLD, sorted(int(c) for c in order[:n]),
                                        f"curve {method} fold {LEARNING_CURVE_FOLD}, {n} cells")
    return inner, chosen, history, final, curve


def main(argv=None) -> int:
    args = parse_args(argv)
    files = data_files()
    if len(files) == 0:
        print(f"gehlenite data not found under {shared_dir() / 'data' / 'gehlenite_efg' / 'orig'} "
              "(set ASE_MLNMR_SHARED): nothing to do")
        return 0
    budget = Budget(args.budget_minutes)
    mode, grid_name = ("quick", "quick") if args.quick else ("full", args.grid)
    grid = QUICK_GRID if args.quick else GRIDS[args.grid]
    folds = [0] if args.quick else list(range(N_OUTER))
    sizes = () if args.no_learning_curve else QUICK_LEARNING_CURVE_SIZES if args.quick else LEARNING_CURVE_SIZES
    results_dir = REPO / "bench" / "results"
    cache_dir = results_dir / "gehlenite_cache"
    if args.fresh and cache_dir.exists():
        shutil.rmtree(cache_dir)
    cache = ResultCache(cache_dir, version=CACHE_VERSION)
    load_start, t_start, stamp = os.getloadavg(), time.time(), time.strftime("%Y%m%d-%H%M%S")

    def log(message: str) -> None:
        print(f"[{time.time() - t_start:7.1f} s] {message}", flush=True)

    machine = machine_report(("numpy", "scipy", "ase", "featomic", "metatensor-core", "scikit-learn"),
                             threads={"final_fits_and_predictions": 1, "search_blas": int(SEARCH_BLAS_THREADS)})
    context = Context(files)
    log(f"read {context.n_cells} cells ({', '.join(f.name for f in files[:3])}, ...); mode {mode}, grid {grid_name}")
    if len(files) != 24:
        log(f"warning: expected 24 cells, found {len(files)}")
    try:
        if args.probe:
            method, setting = args.probe
            probe_folds = [int(k) for k in args.probe_folds.split(",")]
            result = probe(method, setting, probe_folds, args.probe_species.split(","), context, cache, budget, log)
            path = results_dir / f"gehlenite_probe_{method}_{short_hash(setting)}_{stamp}.json"
            path.write_text(json.dumps({"method": method, "setting": setting, "folds": probe_folds, "result": result,
                                        "machine": machine}, indent=1))
            log(f"probe results: {path}")
            return 0
        checks = {} if args.skip_checks else self_checks(sys.modules[__name__], context, grid)
        for name, value in checks.items():
            log(f"check {name}: {value:.3g}")
        if any(not v < 1e-6 for v in checks.values()):
            print(f"self-checks failed: { {k: v for k, v in checks.items() if not v < 1e-6} }")
            return 2
        inner, chosen, history, final, curve = search_and_fit(grid, folds, sizes, context, cache, budget, log)
    except BudgetExceeded as stop:
        cache.flush()
        print(f"stopped: {stop}; the work done so far is cached in {cache_dir}: rerun the same command to continue")
        return 3

    figure = None
    if curve["ours"]:
        figure = (results_dir / "gehlenite_learning_curve_quick.png" if args.quick
                  else REPO / "docs" / "figures" / ("gehlenite_learning_curve.png" if grid_name == "scale-first"
                                                    else f"gehlenite_learning_curve_{grid_name}.png"))
        learning_curve_figure(curve, SPECIES, figure,
                              f"gehlenite EFG, outer fold {LEARNING_CURVE_FOLD} "
                              f"({len(context.cells_of_folds([LEARNING_CURVE_FOLD]))} test cells), "
                              f"grid '{grid_name}', hyper-parameters tuned on the full training side")
        log(f"figure: {figure}")
    record = {
        "mode": mode, "grid_name": grid_name,
        "protocol": {"outer_folds": N_OUTER, "fold_of_cell": {f.name: int(k) for f, k in zip(files, context.fold_of_cell)},
                     "inner": "grouped 4-fold: the other four outer folds", "score": "inner-CV MAE of the six "
                     "independent EFG components (a.u.)", "alpha_grid": ALPHAS, "alpha_start": ALPHAS[ALPHA_START_INDEX],
                     "grids": grid, "learning_curve_fold": LEARNING_CURVE_FOLD, "learning_curve_sizes": list(sizes)},
        "self_checks": checks, "chosen": chosen, "search_history": history,
        "tuning_seconds": {m: scores.tuning_seconds() for m, scores in inner.items()},
        "learning_curve": curve, "figure": None if figure is None else str(figure.relative_to(REPO)),
        "machine": machine, "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "wall_seconds_this_run": time.time() - t_start,
    }
    path = write_results(final, SPECIES, record, results_dir / f"accuracy_gehlenite_efg_{mode}_{grid_name}_{stamp}.json")
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
