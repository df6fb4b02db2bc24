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
* hyper-parameters per species and outer fold by a greedy coordinate search over a small
  grid (one parameter at a time, starting from a default; the ridge alpha is searched at
  every grid point by a downhill walk on a half-decade grid); the score is the inner-CV
  MAE of the six independent Cartesian EFG components (a.u.);
* the chosen model is fitted on all training cells and scored on the test cells with
  ``ase_mlnmr.training.evaluation.efg_metrics`` (both methods): component MAE (a.u. and % of the
  test-side span), CQ and η MAE (27Al, 17O, 43Ca), Harper C̃Q / η̃ MAE and mean q̃;
* learning curve on outer fold 0 with that fold's hyper-parameters;
* wall times of the final training and prediction of both methods.

Ours: ``NMRModel.train`` with ``{"species": {el: {"properties": ["efg"], "descriptor":
{...}, "efg": {"alpha": a, "two_body": b}}}}`` and prediction through ``NMRModel.predict``
(contracted path). During the search the same ridge problem is solved from cached
λ-SOAP features (identical to ``EquivariantRidge``; checked at start-up).

Baseline: featomic ``EquivariantPowerSpectrum`` (λ = 2, σ = +1, TensorProduct GTO basis,
``neighbors_to_properties=True``) per cell, one weight per feature shared by the five μ
(scikit-learn ``Ridge(fit_intercept=False)`` on the stacked μ rows), targets converted with
featomic's ``cartesian_to_spherical`` and predictions back with ``spherical_to_cartesian``
(the round trip and the equivariance of features and conversion are checked at start-up).

This script holds the protocol, the featomic baseline and the report; the generic parts
are the package's: the greedy staged search and the α walk
(:func:`ase_mlnmr.training.model_selection.staged_search`, ``grid_walk``), the Gram-block
ridge engine (:class:`ase_mlnmr.training.ridge_selection.FoldGrams`), the fold statistics
(``fold_statistics``), the metrics (``ase_mlnmr.training.evaluation``) and the resumable
cache and time budget (:mod:`ase_mlnmr.training.search_budget`).

The search is expensive (tens of Cholesky factorisations of 1 000-7 000 wide Gram
matrices per grid point); every inner-CV score, final fit and learning-curve point is
cached in ``bench/results/gehlenite_cache/`` as soon as it is computed, and
``--budget-minutes`` stops the run cleanly (exit status 3) so that a rerun continues
where it stopped. ``--fresh`` empties the cache first.

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
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ase_mlnmr.models.linear import solve_ridge  # noqa: E402
from ase_mlnmr.nmr_model import regression_targets  # noqa: E402
from ase_mlnmr.training.evaluation import efg_component_mae  # noqa: E402
from ase_mlnmr.training.ridge_selection import FoldGrams  # noqa: E402
from ase_mlnmr.training.model_selection import fold_statistics, grid_walk, staged_search  # noqa: E402
from ase_mlnmr.training.search_budget import Budget, BudgetExceeded, ResultCache, short_hash  # noqa: E402
from ase_mlnmr.training.search_budget import canonical_json as canonical  # noqa: E402
from shared_data import shared_dir  # noqa: E402

SPECIES = ("Al", "O", "Ca", "Si")
NEIGHBOURS = ("O", "Al", "Si", "Ca")  # the order NMRModel.train uses (atomic number)
N_OUTER = 5
LAMBDA = 2
CACHE_VERSION = 2  # 2: results through ResultCache.get_or_compute
# ridge alpha grid: half decades; ours: alpha of EquivariantRidge on its scaled problem;
# baseline: alpha relative to the mean squared (scaled) feature value of the training set
ALPHAS = [float(10.0 ** (e / 2)) for e in range(-16, 5)]  # 1e-8 .. 1e2
ALPHA_START_INDEX = 8  # 1e-4

BRIEF_GRID = {
    "ours": {
        "start": {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.4, "two_body": True},
        "stages": [
            ("r_cut", [4.0, 5.0, 6.0]),
            ("n_max", [4, 6, 8]),
            ("sigma", [0.3, 0.4, 0.6]),
            ("two_body", [True, False]),
        ],
    },
    "baseline": {
        "start": {"cutoff": 5.0, "smoothing": 0.5, "max_radial": 5, "max_angular": 4, "width": 0.4, "scale": "none"},
        "stages": [
            ("scale", ["none", "rms"]),
            ("cutoff", [4.0, 5.0, 6.0]),
            ("smoothing", [0.5, "cutoff"]),
            ("max_radial", [3, 5, 7]),
            ("max_angular", [2, 3, 4]),
            ("width", [0.3, 0.4, 0.6]),
        ],
    },
}
QUICK_GRID = {
    "ours": {
        "start": {"r_cut": 5.0, "n_max": 4, "l_max": 4, "sigma": 0.4, "two_body": True},
        "stages": [("r_cut", [4.0, 5.0])],
    },
    "baseline": {
        "start": {"cutoff": 5.0, "smoothing": 0.5, "max_radial": 3, "max_angular": 4, "width": 0.4, "scale": "none"},
        "stages": [("cutoff", [4.0, 5.0])],
    },
}


def _extended(grid: dict) -> dict:
    """The brief grid plus a second sweep of the cut-off radius, up to 7 Å, at the end."""
    out = json.loads(json.dumps(grid))
    out["ours"]["stages"].append(("r_cut", [4.0, 5.0, 6.0, 7.0]))
    out["baseline"]["stages"].append(("cutoff", [4.0, 5.0, 6.0, 7.0]))
    return out


def _with_scale_stage(grid: dict) -> dict:
    """Adds the last stage of ours: the ridge's feature scaling, per-feature RMS ("rms",
    NMRModel ``feature_scaling: per_feature``) or one RMS for all ("none": unscaled features
    with alpha relative to their mean square, i.e. ``feature_scaling: global``)."""
    out = json.loads(json.dumps(grid))
    out["ours"]["stages"].append(("scale", ["rms", "none"]))
    return out


def _with_angular_stage(grid: dict) -> dict:
    """Adds a last stage of the angular resolution, l_max (ours) / max_angular (featomic) 4 or 6."""
    out = json.loads(json.dumps(grid))
    out["ours"]["stages"].append(("l_max", [4, 6]))
    out["baseline"]["stages"].append(("max_angular", [4, 6]))
    return out


RADIAL_SCALINGS = [None, {"r0": 2.0, "exponent": 4}, {"r0": 3.0, "exponent": 4}]


def _with_radial_scaling_stage(grid: dict, species: list[str]) -> dict:
    """Adds a last stage of the neighbour weight 1 / (1 + (d/r0)^m) (Willatt 2018; ours:
    ``radial_scaling``, featomic: ``Willatt2018`` density scaling, rate 1) for ``species``."""
    out = json.loads(json.dumps(grid))
    for method in ("ours", "baseline"):
        out[method]["stages"].append(("radial_scaling", RADIAL_SCALINGS, list(species)))
    return out


GRIDS = {"brief": _with_scale_stage(BRIEF_GRID), "extended": _with_scale_stage(_extended(BRIEF_GRID)),
         "angular": _with_angular_stage(_with_scale_stage(_extended(BRIEF_GRID)))}
# the radial scaling stage for Si only: Si was the one species the angular grid left ours behind,
# the stage for O (featomic at max_angular 6: ~15 min per setting here) did not fit the time
GRIDS["radial-si"] = _with_radial_scaling_stage(GRIDS["angular"], ["Si"])


def _scale_first(grid: dict) -> dict:
    """Moves ours' feature-scaling stage to the front, where the baseline's has always been:
    with the scaling searched last, ours swept the cut-off radius with per-feature scaling
    only, which can stop the greedy search at a smaller radius (Si, outer fold 3 of
    'radial-si')."""
    out = json.loads(json.dumps(grid))
    stages = out["ours"]["stages"]
    scale = [stage for stage in stages if stage[0] == "scale"]
    out["ours"]["stages"] = scale + [stage for stage in stages if stage[0] != "scale"]
    return out


# the same stages for both methods in the same order: the default
GRIDS["scale-first"] = _scale_first(GRIDS["radial-si"])
QUICK_GRID = _with_scale_stage(QUICK_GRID)
FULL_GRID = GRIDS["brief"]  # the keys a setting of each method has
METHODS = ("ours", "baseline")
METHOD_LABELS = {"ours": "ase_mlnmr NMRModel", "baseline": "featomic λ-SOAP + ridge"}
# parameters that only select columns / scale features: no new features needed
VARIANT_KEYS = {"ours": ("two_body", "scale"), "baseline": ("scale",)}
LEARNING_CURVE_FOLD = 0
LEARNING_CURVE_SIZES = (4, 8, 12, 16, 19)
QUICK_LEARNING_CURVE_SIZES = (4, 19)


# ----------------------------------------------------------------------------- data
def data_files() -> list[Path]:
    folder = shared_dir() / "data" / "gehlenite_efg" / "orig"
    return sorted(folder.glob("*.magres"), key=lambda p: p.name)


def outer_fold_of_cells(n_cells: int) -> np.ndarray:
    return np.arange(n_cells) % N_OUTER


def pair_key(a: int, b: int) -> str:
    return f"{min(a, b)}-{max(a, b)}"


def cell_reference(dataset, species: str) -> list[np.ndarray]:
    """Reference EFG tensors (a.u.) of the atoms of one species, per cell."""
    out = []
    for atoms, tensors, mask in zip(dataset.structures, dataset.tensors["efg"], dataset.masks["efg"]):
        rows = np.flatnonzero(mask & (np.array(atoms.get_chemical_symbols()) == species))
        out.append(tensors[rows])
    return out


def species_centres(atoms, species: str) -> np.ndarray:
    return np.flatnonzero(np.array(atoms.get_chemical_symbols()) == species)


# ------------------------------------------------------------------- λ = 2 bases
def ours_basis() -> np.ndarray:
    """(5, 3, 3): Cartesian tensor of each of our spherical components."""
    from ase_mlnmr.core.spherical_tensors import L2_BASIS

    return np.array(L2_BASIS)


def featomic_cartesian_to_spherical(tensors: np.ndarray) -> np.ndarray:
    """λ = 2 components (n, 5) of (n, 3, 3) tensors with featomic's own conversion."""
    from featomic.clebsch_gordan import cartesian_to_spherical
    from metatensor import Labels, TensorBlock, TensorMap

    n = len(tensors)
    block = TensorBlock(
        values=np.ascontiguousarray(tensors, dtype=float)[..., None],
        samples=Labels(["sample"], np.arange(n).reshape(-1, 1)),
        components=[Labels(["xyz_1"], np.arange(3).reshape(-1, 1)), Labels(["xyz_2"], np.arange(3).reshape(-1, 1))],
        properties=Labels(["efg"], np.array([[0]])),
    )
    spherical = cartesian_to_spherical(TensorMap(Labels(["tensor"], np.array([[0]])), [block]),
                                       components=["xyz_1", "xyz_2"], keep_l_in_keys=True)
    return np.array(spherical.block(o3_lambda=2, o3_sigma=1).values[..., 0])


def featomic_spherical_to_cartesian(components: np.ndarray) -> np.ndarray:
    """(n, 3, 3) Cartesian tensors of λ = 2 components (n, 5) with featomic's conversion.

    featomic 0.6.7's ``spherical_to_cartesian`` needs the ``l_1``/``l_2`` key dimensions
    even for rank 2 (its docstring says they are re-created, the code checks the input
    names) and one more key dimension (else it builds a TensorMap with no key names).
    """
    from featomic.clebsch_gordan import spherical_to_cartesian
    from metatensor import Labels, TensorBlock, TensorMap

    n = len(components)
    block = TensorBlock(
        values=np.ascontiguousarray(components, dtype=float)[..., None],
        samples=Labels(["sample"], np.arange(n).reshape(-1, 1)),
        components=[Labels(["o3_mu"], np.arange(-2, 3).reshape(-1, 1))],
        properties=Labels(["efg"], np.array([[0]])),
    )
    keys = Labels(["o3_lambda", "o3_sigma", "l_2", "l_1", "tensor"], np.array([[2, 1, 1, 1, 0]]))
    cartesian = spherical_to_cartesian(TensorMap(keys, [block]))
    return np.array(cartesian.block(0).values[..., 0])


def featomic_basis() -> np.ndarray:
    """(5, 3, 3) through featomic's own spherical_to_cartesian (unit components)."""
    return featomic_spherical_to_cartesian(np.eye(5))


# --------------------------------------------------------------------- features
def ours_descriptor(setting: dict):
    from ase_mlnmr.descriptors import LambdaSOAP

    return LambdaSOAP(list(NEIGHBOURS), r_cut=float(setting["r_cut"]), n_max=int(setting["n_max"]),
                      l_max=int(setting["l_max"]), sigma=float(setting["sigma"]), lam=LAMBDA, two_body=True,
                      radial_scaling=setting.get("radial_scaling"))


def ours_two_body_columns(setting: dict) -> int:
    return len(NEIGHBOURS) * int(setting["n_max"])


def featomic_hypers(setting: dict) -> dict:
    cutoff = float(setting["cutoff"])
    smoothing = cutoff if setting["smoothing"] == "cutoff" else float(setting["smoothing"])
    return {
        "cutoff": {"radius": cutoff, "smoothing": {"type": "ShiftedCosine", "width": smoothing}},
        "density": {"type": "Gaussian", "width": float(setting["width"]),  # centre atom weight: default 1
                    **({"scaling": {"type": "Willatt2018", "rate": 1.0, "scale": float(setting["radial_scaling"]["r0"]),
                                    "exponent": int(setting["radial_scaling"]["exponent"])}}
                       if setting.get("radial_scaling") else {})},
        "basis": {"type": "TensorProduct", "max_angular": int(setting["max_angular"]),
                  "radial": {"type": "Gto", "max_radial": int(setting["max_radial"])}},
    }


class FeatomicFeatures:
    """featomic λ = 2 equivariant power spectrum, one cell at a time, split by centre species."""

    def __init__(self, setting: dict) -> None:
        import featomic
        import metatensor
        from ase.data import atomic_numbers
        from featomic.clebsch_gordan import EquivariantPowerSpectrum

        self.calculator = EquivariantPowerSpectrum(
            featomic.SphericalExpansion(**featomic_hypers(setting)),
            neighbor_types=sorted(atomic_numbers[s] for s in NEIGHBOURS),
        )
        self.keys = metatensor.Labels(["o3_lambda", "o3_sigma"], np.array([[LAMBDA, 1]]))
        self.properties = None

    def cell(self, atoms) -> dict[str, np.ndarray]:
        """{species: (n_species_atoms, 5, p)} in the order of the atoms."""
        from ase.data import chemical_symbols

        tensor = self.calculator.compute(atoms, selected_keys=self.keys, neighbors_to_properties=True)
        out = {}
        for key, block in tensor.items():
            if self.properties is None:
                self.properties = block.properties
            elif block.properties != self.properties:
                raise RuntimeError("featomic property labels differ between blocks")
            atom = np.asarray(block.samples.column("atom"))
            order = np.argsort(atom)
            out[chemical_symbols[int(key["center_type"])]] = np.ascontiguousarray(np.asarray(block.values)[order])
        return out


def ours_cell_features(descriptor, atoms, species: str) -> np.ndarray:
    return descriptor.create(atoms, centres=species_centres(atoms, species))


# ------------------------------------------------------------------------ ridge
class FoldBlocks:
    """One species, one feature setting: the package's ridge engine
    (:class:`ase_mlnmr.training.ridge_selection.FoldGrams`: per outer fold, Gram blocks built
    once) per column set, the reference Cartesian tensors per fold, and the basis mapping
    spherical predictions back to them."""

    # per-feature RMS scaling makes the relative alpha absolute (mean squared scaled feature = 1)
    SCALING = {("rms", False): "per_feature", ("rms", True): "per_feature", ("none", True): "global",
               ("none", False): "none"}

    def __init__(self, cell_features: list[np.ndarray], cell_targets: list[np.ndarray],
                 cell_reference: list[np.ndarray], fold_of_cell: np.ndarray, basis: np.ndarray) -> None:
        self.basis = basis
        self.features = np.concatenate(cell_features)
        self.targets = np.concatenate(cell_targets)
        self.fold_of_atom = np.concatenate([np.full(len(t), fold_of_cell[c]) for c, t in enumerate(cell_targets)])
        self.ref = {int(f): np.concatenate([cell_reference[c] for c in np.flatnonzero(fold_of_cell == f)])
                    for f in np.unique(fold_of_cell)}
        self._grams: dict[int | None, FoldGrams] = {}
        self._systems: dict = {}

    def grams(self, columns: slice) -> FoldGrams:
        if columns.start not in self._grams:
            self._grams[columns.start] = FoldGrams(self.features, self.targets, self.fold_of_atom, columns)
        return self._grams[columns.start]

    def coefficients(self, train: list[int], columns: slice, scale: str, alpha: float, relative: bool) -> np.ndarray:
        """Ridge weights on the raw features ``columns`` (one per feature, shared by μ).

        ``scale='rms'``: features divided by their RMS over the training rows (our
        ``feature_scaling='per_feature'``); ``'none'`` with ``relative``: alpha relative to
        the mean squared feature value, i.e. one global RMS (``'global'``).
        """
        grams, scaling = self.grams(columns), self.SCALING[(scale, relative)]
        key = (tuple(train), columns.start, scaling)
        if key not in self._systems:
            while len(self._systems) >= 4:  # the four inner training sets of one outer fold
                self._systems.pop(next(iter(self._systems)))
            s = grams.scale(train, scaling)
            self._systems[key] = (s, *grams.system(train, s, scaling))
        s, A, r = self._systems[key]
        return grams.scaled_weights(train, s, solve_ridge(A, r, alpha)) / s

    def predict(self, fold: int, columns: slice, coef: np.ndarray) -> np.ndarray:
        grams = self.grams(columns)
        spherical = (grams.x(grams.rows[fold]) @ coef).reshape(-1, 2 * LAMBDA + 1)
        return np.einsum("nm,mij->nij", spherical, self.basis)


# ----------------------------------------------------------------------- context
class Context:
    """The data set, folds, per-species references and targets in both bases."""

    def __init__(self, files: list[Path]) -> None:
        from ase_mlnmr.training.dataset import read_tensor_dataset

        self.files = files
        self.dataset = read_tensor_dataset([str(f) for f in files], properties=["efg"])
        self.n_cells = len(self.dataset)
        self.fold_of_cell = outer_fold_of_cells(self.n_cells)
        self.reference = {sp: cell_reference(self.dataset, sp) for sp in SPECIES}
        self.targets = {
            "ours": {sp: [regression_targets("efg", t) for t in self.reference[sp]] for sp in SPECIES},
            "baseline": {sp: [featomic_cartesian_to_spherical(t) for t in self.reference[sp]] for sp in SPECIES},
        }
        self.basis = {"ours": ours_basis(), "baseline": featomic_basis()}

    def cells_of_folds(self, folds) -> list[int]:
        return [int(c) for c in np.flatnonzero(np.isin(self.fold_of_cell, list(folds)))]




def split_setting(method: str, setting: dict) -> tuple[dict, dict]:
    """(feature parameters, variant parameters) of a full setting."""
    keys = VARIANT_KEYS[method]
    features = {k: v for k, v in setting.items() if k not in keys and not (k == "radial_scaling" and v is None)}
    variant = {k: setting[k] for k in keys if k in setting}
    if method == "ours" and variant.get("scale") == "rms":
        del variant["scale"]  # the default: same cache entries as NMRModel's ridge
    return features, variant


def variant_columns(method: str, features: dict, variant: dict) -> tuple[slice, str, bool]:
    """(columns, scaling, relative alpha) of a variant."""
    if method == "ours":
        start = 0 if variant["two_body"] else ours_two_body_columns(features)
        scale = variant.get("scale", "rms")
        return slice(start, None), scale, scale != "rms"
    return slice(0, None), variant["scale"], True


class BlockProvider:
    """Features and FoldBlocks of one method and feature setting, built on first use."""

    def __init__(self, method: str, features: dict, context: Context, budget: Budget) -> None:
        self.method, self.features, self.context, self.budget = method, features, context, budget
        self._cells: dict[str, list[np.ndarray]] | None = None
        self._blocks: dict[str, FoldBlocks] = {}
        self.seconds = {"features": 0.0, "gram": 0.0}
        self.charged = 0.0

    def _cell_features(self, species: str) -> list[np.ndarray]:
        structures = self.context.dataset.structures
        t0 = time.perf_counter()
        if self.method == "ours":
            descriptor = ours_descriptor(self.features)
            out = [ours_cell_features(descriptor, atoms, species) for atoms in structures]
        else:
            if self._cells is None or species not in self._cells:
                calculator = FeatomicFeatures(self.features)
                per_cell = [calculator.cell(atoms) for atoms in structures]
                self._cells = {sp: [c[sp] for c in per_cell] for sp in SPECIES}
            out = self._cells.pop(species)
        self.seconds["features"] += time.perf_counter() - t0
        return out

    def blocks(self, species: str) -> FoldBlocks:
        if species not in self._blocks:
            self.budget.check(f"{self.method} features {self.features} ({species})")
            self._blocks.clear()
            gc.collect()
            features = self._cell_features(species)
            t0 = time.perf_counter()
            self._blocks[species] = FoldBlocks(features, self.context.targets[self.method][species],
                                               self.context.reference[species], self.context.fold_of_cell,
                                               self.context.basis[self.method])
            self.seconds["gram"] += time.perf_counter() - t0
        return self._blocks[species]


# ------------------------------------------------------------------------ search
class InnerCV:
    """Inner-CV scores of one method: the ridge of a (species, feature setting, variant,
    α) trained without outer folds {k, j} and scored on fold j (the component MAE, a.u.),
    each solve cached; the score of outer fold k is the mean over the four j. Features and
    Gram blocks are built for one feature setting at a time (the package's
    :func:`staged_search` hands the candidates over grouped by feature setting)."""

    def __init__(self, method: str, context: Context, cache: ResultCache, budget: Budget, log=print) -> None:
        self.method, self.context, self.cache, self.budget, self.log = method, context, cache, budget, log
        self.provider: BlockProvider | None = None
        self.used_names: set[str] = set()
        self.n_solves = 0

    def _provider(self, features: dict) -> BlockProvider:
        if self.provider is None or self.provider.features != features:
            self.close()
            self.provider = BlockProvider(self.method, features, self.context, self.budget)
            self._group_start = (time.perf_counter(), self.n_solves)
        return self.provider

    def close(self) -> None:
        """Log the solves of the current feature setting and free its blocks."""
        if self.provider is not None and self.n_solves > self._group_start[1]:
            p = self.provider
            self.log(f"  [{self.method}] {p.features}: {self.n_solves - self._group_start[1]} solves, "
                     f"{time.perf_counter() - self._group_start[0]:.0f} s (features {p.seconds['features']:.0f} s, "
                     f"gram {p.seconds['gram']:.0f} s)")
        self.provider = None
        gc.collect()

    def pair_mae(self, species: str, features: dict, variant: dict, fold: int, other: int, alpha_index: int) -> float:
        """MAE on outer fold ``other`` of the model trained without folds {fold, other}."""
        name = f"inner_{self.method}_{species}_{short_hash(features)}"
        self.used_names.add(name)
        entry = self.cache.load(name)
        entry.setdefault("features", features)

        def solve() -> dict:
            provider = self._provider(features)
            blocks = provider.blocks(species)
            columns, scale, relative = variant_columns(self.method, features, variant)
            train = [f for f in range(N_OUTER) if f not in (fold, other)]
            t0 = time.perf_counter()
            coef = blocks.coefficients(train, columns, scale, ALPHAS[alpha_index], relative)
            maes = {str(f): efg_component_mae(blocks.ref[f], blocks.predict(f, columns, coef)) for f in (fold, other)}
            seconds = entry.setdefault("seconds", {"solves": 0.0, "features_and_gram": 0.0})
            seconds["solves"] += time.perf_counter() - t0
            built = provider.seconds["features"] + provider.seconds["gram"]
            seconds["features_and_gram"] += built - provider.charged
            provider.charged = built
            self.n_solves += 1
            return maes

        key = f"{pair_key(fold, other)}|{canonical(variant)}|{alpha_index}"
        return self.cache.get_or_compute(name, key, solve, self.budget, "an inner-CV solve", flush=False)[str(other)]

    def walk(self, species: str, fold: int, setting: dict, start: int) -> tuple[int, float, dict]:
        """The package's downhill walk on the α grid (a step must gain more than 0.1 %)."""
        features, variant = split_setting(self.method, setting)

        def score(i: int) -> float:
            return float(np.mean([self.pair_mae(species, features, variant, fold, j, i)
                                  for j in range(N_OUTER) if j != fold]))

        try:
            return grid_walk(score, len(ALPHAS), start, min_gain=1e-3)
        finally:
            self.cache.flush()  # an interrupted run keeps every finished solve

    def __call__(self, track: tuple[str, int], setting: dict, alpha_index: int) -> tuple[float, int, dict]:
        """Score of one candidate of :func:`staged_search`; the hint is the α index."""
        i, score, curve = self.walk(*track, setting, alpha_index)
        return score, i, {"alpha": ALPHAS[i], "inner_mae": score, "alpha_curve": {ALPHAS[k]: v for k, v in curve.items()}}

    def tuning_seconds(self) -> dict:
        """CPU-side wall time spent on this search, summed over all runs (from the cache)."""
        total = {"solves": 0.0, "features_and_gram": 0.0}
        for name in self.used_names:
            for k, v in self.cache.load(name).get("seconds", {}).items():
                total[k] += v
        return total


def search(method: str, grid: dict, context: Context, folds: list[int], inner: InnerCV) -> tuple[dict, dict]:
    """Greedy staged search per (species, outer fold) with the package's
    :func:`staged_search`; returns (chosen settings, history), both {species: {fold: ...}}."""
    tracks = [(sp, k) for sp in SPECIES for k in folds]
    stages = [stage if len(stage) < 3 else (stage[0], stage[1], [(sp, k) for sp in stage[2] for k in folds])
              for stage in grid["stages"]]
    try:
        state, history = staged_search(tracks, grid["start"], stages, inner, hint=ALPHA_START_INDEX,
                                       group_key=lambda setting: canonical(split_setting(method, setting)[0]))
    finally:
        inner.close()
    chosen = {sp: {} for sp in SPECIES}
    for (sp, k), best in state.items():
        chosen[sp][str(k)] = {"setting": best["setting"], "alpha": ALPHAS[best["hint"]], "inner_mae": best["score"],
                              "alpha_at_grid_edge": best["hint"] in (0, len(ALPHAS) - 1)}
    return chosen, {sp: {str(k): history[(sp, k)] for k in folds} for sp in SPECIES}


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
    from ase_mlnmr.training.evaluation import collect_predictions, efg_metrics
    from ase_mlnmr.nmr_model import NMRModel

    config = ours_config(chosen)
    t0 = time.perf_counter()
    model = NMRModel.train(context.dataset, config, progress=False, structure_indices=train_cells)
    t_train = time.perf_counter() - t0
    test = context.dataset.subset(test_cells)
    t0 = time.perf_counter()
    pairs = collect_predictions(model, test)["efg"]
    t_predict = time.perf_counter() - t0
    # the EFG part alone (contracted λ = 2 path, neighbour list included), without the OOD models
    t0 = time.perf_counter()
    for atoms in test.structures:
        for sp in SPECIES:
            model.models[(sp, "efg")].predict(atoms, species_centres(atoms, sp))
    t_predict_efg = time.perf_counter() - t0
    return {
        "metrics": efg_metrics(pairs, model.isotopes),
        "seconds": {"train_total": t_train, "predict_total": t_predict, "predict_efg_only": t_predict_efg},
        "config": config,
        "n_train_cells": len(train_cells),
        "n_test_atoms": int(len(pairs.elements)),
    }


def fit_and_score_baseline(context: Context, chosen: dict, train_cells: list[int], test_cells: list[int]) -> dict:
    from sklearn.linear_model import Ridge

    from ase_mlnmr.training.evaluation import PairedTensors, efg_metrics

    structures = context.dataset.structures
    groups: dict[str, tuple[dict, list[str]]] = {}
    for sp in SPECIES:
        features, _ = split_setting("baseline", chosen[sp]["setting"])
        groups.setdefault(canonical(features), (features, []))[1].append(sp)

    seconds = {"features_train": 0.0, "fit": 0.0, "features_test": 0.0, "predict": 0.0}
    elements, reference, predicted, index = [], [], [], []
    for features, species in groups.values():
        calculator = FeatomicFeatures(features)
        t0 = time.perf_counter()
        train_features = [calculator.cell(structures[c]) for c in train_cells]
        seconds["features_train"] += time.perf_counter() - t0
        models = {}
        for sp in species:
            t0 = time.perf_counter()
            X = np.concatenate([cf[sp] for cf in train_features])
            X = X.reshape(-1, X.shape[-1])
            y = featomic_cartesian_to_spherical(np.concatenate([context.reference[sp][c] for c in train_cells])).reshape(-1)
            if chosen[sp]["setting"]["scale"] == "rms":
                s = np.sqrt(np.mean(X**2, axis=0))
                s = np.where(s > 0, s, 1.0)
            else:
                s = np.ones(X.shape[1])
            Xs = X / s
            alpha = chosen[sp]["alpha"] * float(np.mean(Xs**2))  # relative to the mean squared feature
            ridge = Ridge(alpha=alpha, fit_intercept=False).fit(Xs, y)
            models[sp] = (ridge, s)
            seconds["fit"] += time.perf_counter() - t0
            del X, Xs
        del train_features
        gc.collect()
        for c in test_cells:
            t0 = time.perf_counter()
            cell = calculator.cell(structures[c])
            seconds["features_test"] += time.perf_counter() - t0
            for sp in species:
                t0 = time.perf_counter()
                ridge, s = models[sp]
                X = cell[sp]
                spherical = ridge.predict(X.reshape(-1, X.shape[-1]) / s).reshape(len(X), 2 * LAMBDA + 1)
                cartesian = featomic_spherical_to_cartesian(spherical)
                seconds["predict"] += time.perf_counter() - t0
                elements.append(np.full(len(X), sp))
                reference.append(context.reference[sp][c])
                predicted.append(cartesian)
                index.append(np.full(len(X), c))
    pairs = PairedTensors("efg", np.concatenate(elements), np.concatenate(reference), np.concatenate(predicted),
                          np.concatenate(index))
    seconds["train_total"] = seconds["features_train"] + seconds["fit"]
    seconds["predict_total"] = seconds["features_test"] + seconds["predict"]
    return {"metrics": efg_metrics(pairs), "seconds": seconds, "n_train_cells": len(train_cells),
            "n_test_atoms": int(len(pairs.elements)),
            "hypers": {sp: featomic_hypers(split_setting("baseline", chosen[sp]["setting"])[0]) for sp in SPECIES}}


FIT_AND_SCORE = {"ours": fit_and_score_ours, "baseline": fit_and_score_baseline}


def cached_fit(cache: ResultCache, budget: Budget, label: str, method: str, context: Context, chosen: dict,
               train_cells: list[int], test_cells: list[int], log=print) -> dict:
    """Fit and score one method; cached under a name made from what is fitted (chosen
    settings, training and test cells), so grids that choose the same settings share it."""
    key = canonical({"chosen": {sp: {"setting": c["setting"], "alpha": c["alpha"]} for sp, c in chosen.items()},
                     "train": train_cells, "test": test_cells})

    def fit() -> dict:
        from threadpoolctl import threadpool_limits

        t0 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):  # timed: one thread, as the search may not be
            result = FIT_AND_SCORE[method](context, chosen, train_cells, test_cells)
        log(f"  {label}: {time.perf_counter() - t0:.0f} s")
        return result

    return cache.get_or_compute(f"fit_{method}_{short_hash(key)}", key, fit, budget, f"the fit {label}")


# ------------------------------------------------------------------ self-checks
def self_checks(context: Context, grid: dict) -> dict:
    """Basis conventions and solver equivalences, on a few cells (seconds)."""
    from scipy.spatial.transform import Rotation
    from sklearn.linear_model import Ridge

    from ase_mlnmr.descriptors import LambdaSOAP
    from ase_mlnmr.models.linear import EquivariantRidge
    from ase_mlnmr.nmr_model import NMRModel

    checks: dict = {}
    tensors = np.concatenate([context.reference[sp][0] for sp in SPECIES])
    # 1. featomic conversion: Cartesian -> spherical -> Cartesian, and the basis matrix
    spherical = featomic_cartesian_to_spherical(tensors)
    checks["featomic_round_trip_max_abs_au"] = float(np.abs(featomic_spherical_to_cartesian(spherical) - tensors).max())
    checks["featomic_basis_matrix_vs_tensormap_max_abs"] = float(np.abs(
        np.einsum("nm,mij->nij", spherical, context.basis["baseline"]) - featomic_spherical_to_cartesian(spherical)).max())
    checks["featomic_vs_ours_l2_components_max_abs"] = float(np.abs(spherical - regression_targets("efg", tensors)).max())
    # 2. equivariance: rotate cell 0, features of the rotated cell mapped to Cartesian = R C R^T
    atoms = context.dataset.structures[0]
    rotation = Rotation.random(random_state=7).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    base_features = split_setting("baseline", grid["baseline"]["start"])[0]
    ours_features = split_setting("ours", grid["ours"]["start"])[0]
    descriptor = ours_descriptor(ours_features)
    calculator = FeatomicFeatures(base_features)
    for method, get in (("ours", lambda a: ours_cell_features(descriptor, a, "Al")),
                        ("baseline", lambda a: calculator.cell(a)["Al"])):
        basis = context.basis[method]
        cart = np.einsum("nmf,mij->nfij", get(atoms)[:, :, :200], basis)
        cart_rot = np.einsum("nmf,mij->nfij", get(rotated)[:, :, :200], basis)
        expected = np.einsum("ij,nfjk,lk->nfil", rotation, cart, rotation)
        checks[f"{method}_features_equivariance_rel_err"] = float(
            np.abs(cart_rot - expected).max() / np.abs(expected).max())
    # 3. two-body columns come first in our λ-SOAP
    no_two_body = LambdaSOAP(list(NEIGHBOURS), r_cut=ours_features["r_cut"], n_max=ours_features["n_max"],
                             l_max=ours_features["l_max"], sigma=ours_features["sigma"], lam=LAMBDA, two_body=False)
    full = ours_cell_features(descriptor, atoms, "Si")
    checks["ours_two_body_columns_first_max_abs"] = float(np.abs(
        full[:, :, ours_two_body_columns(ours_features):] - ours_cell_features(no_two_body, atoms, "Si")).max())
    # 4. our search solver = EquivariantRidge = NMRModel.train + predict (contracted path)
    sp, train_cells, test_cells, alpha = "Si", [1, 2, 3], [0, 5], 1e-3
    X = [ours_cell_features(descriptor, context.dataset.structures[c], sp) for c in range(context.n_cells)]
    fold = np.array([0 if c in train_cells else 1 for c in range(context.n_cells)])
    fold[[c for c in range(context.n_cells) if c not in train_cells + test_cells]] = 2
    blocks = FoldBlocks(X, context.targets["ours"][sp], context.reference[sp], fold, context.basis["ours"])
    coef = blocks.coefficients([0], slice(0, None), "rms", alpha, False)
    ridge = EquivariantRidge(lam=2, alpha=alpha).fit(np.concatenate([X[c] for c in train_cells]),
                                                     np.concatenate([context.targets["ours"][sp][c] for c in train_cells]))
    checks["ours_solver_vs_EquivariantRidge_rel_err"] = float(np.abs(coef - ridge.coef_).max() / np.abs(ridge.coef_).max())
    coef_none = blocks.coefficients([0], slice(0, None), "none", alpha, True)
    Xt = np.concatenate([X[c] for c in train_cells])
    unscaled = EquivariantRidge(lam=2, alpha=alpha, feature_scaling="global").fit(
        Xt, np.concatenate([context.targets["ours"][sp][c] for c in train_cells]))
    checks["ours_global_scaling_solver_vs_EquivariantRidge_rel_err"] = float(
        np.abs(coef_none - unscaled.coef_).max() / np.abs(unscaled.coef_).max())
    config = ours_config({sp: {"setting": dict(grid["ours"]["start"]), "alpha": alpha}})
    model = NMRModel.train(context.dataset, config, progress=False, structure_indices=train_cells)
    diffs = []
    for c in test_cells:
        a = context.dataset.structures[c]
        centres = species_centres(a, sp)
        mine = np.einsum("nm,mij->nij", X[c] @ coef, context.basis["ours"])
        diffs.append(np.abs(model.predict(a, unknown_species="skip").efg[centres] - mine).max())
    checks["ours_solver_vs_NMRModel_predict_max_abs_au"] = float(max(diffs))
    # 5. baseline search solver = scikit-learn Ridge(fit_intercept=False)
    F = [calculator.cell(context.dataset.structures[c])[sp] for c in range(context.n_cells)]
    blocks = FoldBlocks(F, context.targets["baseline"][sp], context.reference[sp], fold, context.basis["baseline"])
    for scale in ("none", "rms"):
        coef = blocks.coefficients([0], slice(0, None), scale, alpha, True)
        Xt = np.concatenate([F[c] for c in train_cells]).reshape(-1, F[0].shape[-1])
        s = np.sqrt(np.mean(Xt**2, axis=0)) if scale == "rms" else np.ones(Xt.shape[1])
        s = np.where(s > 0, s, 1.0)
        yt = np.concatenate([context.targets["baseline"][sp][c] for c in train_cells]).reshape(-1)
        sk = Ridge(alpha=alpha * float(np.mean((Xt / s) ** 2)), fit_intercept=False).fit(Xt / s, yt).coef_ / s
        checks[f"baseline_solver_vs_sklearn_{scale}_rel_err"] = float(np.abs(coef - sk).max() / np.abs(sk).max())
    return checks


# ----------------------------------------------------------------------- report
def aggregate(final: dict) -> dict:
    """{method: {species: {metric: {"mean", "std", "n_folds", "values"}}}} over the outer folds."""
    return {method: fold_statistics([per_fold[k]["metrics"] for k in sorted(per_fold)])
            for method, per_fold in final.items()}


def fmt(entry: dict | None, digits: int = 3, scale: float = 1.0, fixed: int | None = None) -> str:
    if entry is None:
        return "—"
    if fixed is not None:
        return f"{entry['mean'] * scale:.{fixed}f} ± {entry['std'] * scale:.{fixed}f}"
    return f"{entry['mean'] * scale:.{digits}g} ± {entry['std'] * scale:.2g}"


def _verdict(summary: dict, method: str, sp: str) -> str:
    o, b = summary[method][sp]["efg_mae_au"], summary["baseline"][sp]["efg_mae_au"]
    wins = sum(x <= y for x, y in zip(o["values"], b["values"]))
    word = "yes" if o["mean"] <= b["mean"] else "**no**"
    return f"{word} ({wins}/{len(o['values'])})"


def markdown_tables(summary: dict) -> str:
    methods = [m for m in METHODS if m in summary]
    short = {"ours": "ours", "baseline": "featomic"}
    header = " | ".join
    lines = [
        "| species | n test atoms / fold | " + header(f"MAE {short[m]} (10⁻³ a.u.)" for m in methods) + " | "
        + header(f"% span {short[m]}" for m in methods) + " | ours ≤ featomic (folds) |",
        "|---" * (2 + 2 * len(methods) + 1) + "|",
    ]
    for sp in SPECIES:
        row = [sp, f"{summary['ours'][sp]['n']['mean']:.0f}"]
        row += [fmt(summary[m][sp]["efg_mae_au"], scale=1e3) for m in methods]
        row += [fmt(summary[m][sp]["efg_mae_pct_span"]) for m in methods]
        row += [_verdict(summary, "ours", sp)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| species | " + header(f"CQ MAE {short[m]} (MHz)" for m in methods) + " | "
              + header(f"η MAE {short[m]}" for m in methods) + " |", "|---" * (1 + 2 * len(methods)) + "|"]
    for sp in SPECIES:
        row = [sp] + [fmt(summary[m][sp].get("cq_mae_MHz")) for m in methods]
        row += [fmt(summary[m][sp].get("eta_mae")) for m in methods]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| species | " + header(f"C̃Q MAE {short[m]}" for m in methods) + " | "
              + header(f"η̃ MAE {short[m]}" for m in methods) + " | " + header(f"mean q̃ {short[m]}" for m in methods)
              + " |", "|---" * (1 + 3 * len(methods)) + "|"]
    for sp in SPECIES:
        row = [sp] + [fmt(summary[m][sp]["cq_tilde_mae"]) for m in methods]
        row += [fmt(summary[m][sp]["eta_tilde_mae"]) for m in methods]
        row += [fmt(summary[m][sp]["q_tilde_mean"], fixed=5) for m in methods]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def learning_curve_figure(curve: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    styles = {"ours": "o-", "baseline": "s--"}
    fig, axes = plt.subplots(1, len(SPECIES), figsize=(13, 3.6), dpi=120)
    for ax, sp in zip(axes, SPECIES):
        for method in METHODS:
            if not curve.get(method):
                continue
            sizes = sorted(int(n) for n in curve[method])
            values = [1e3 * curve[method][str(n)]["metrics"][sp]["efg_mae_au"] for n in sizes]
            ax.plot(sizes, values, styles[method], label=METHOD_LABELS[method])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(n) for n in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
        ax.set_xlabel("training cells (288 atoms each)")
        ax.set_title(sp)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("EFG component MAE (10⁻³ a.u.)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def machine_info() -> dict:
    from machine_report import machine_report

    return machine_report(("numpy", "scipy", "ase", "featomic", "metatensor-core", "scikit-learn"),
                          threads={"final_fits_and_predictions": 1, "search_blas": int(SEARCH_BLAS_THREADS)})


# ------------------------------------------------------------------------ probe
def probe(context: Context, cache: ResultCache, budget: Budget, method: str, setting: dict, folds: list[int],
          species: list[str], log=print) -> dict:
    """Inner-CV score (alpha walked) of one full setting, for investigating beyond the grid."""
    inner = InnerCV(method, context, cache, budget, log)
    out = {}
    try:
        for sp in species:
            out[sp] = {}
            for k in folds:
                i, score, curve = inner.walk(sp, k, setting, ALPHA_START_INDEX)
                out[sp][str(k)] = {"inner_mae": score, "alpha": ALPHAS[i],
                                   "alpha_curve": {ALPHAS[j]: v for j, v in curve.items()}}
                log(f"  probe {method} {sp} fold {k}: inner MAE {1e3 * score:.4f}e-3 a.u. at alpha {ALPHAS[i]:.3g}")
    finally:
        inner.close()
    return out


# ------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny grids, outer fold 0 only, 2-point learning curve")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="scale-first",
                        help="'brief': r_cut/cutoff 4-6 Å, l_max 4; 'extended': the same search followed by a "
                             "second cut-off sweep over 4-7 Å; 'angular': then l_max/max_angular 4 or 6; 'radial-si': "
                             "then, for Si only, the radial scaling of the density (both methods); 'scale-first' "
                             "(default): 'radial-si' with ours' feature-scaling stage moved to the front, as the "
                             "baseline's")
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

    files = data_files()
    if len(files) == 0:
        print(f"gehlenite data not found under {shared_dir() / 'data' / 'gehlenite_efg' / 'orig'} "
              "(set ASE_MLNMR_SHARED): nothing to do")
        return 0
    budget = Budget(args.budget_minutes)
    mode = "quick" if args.quick else "full"
    grid_name = "quick" if args.quick else args.grid
    grid = QUICK_GRID if args.quick else GRIDS[args.grid]
    folds = [0] if args.quick else list(range(N_OUTER))
    sizes = QUICK_LEARNING_CURVE_SIZES if args.quick else LEARNING_CURVE_SIZES
    results_dir = REPO / "bench" / "results"
    cache_dir = results_dir / "gehlenite_cache"
    if args.fresh and cache_dir.exists():
        shutil.rmtree(cache_dir)
    cache = ResultCache(cache_dir, version=CACHE_VERSION)
    load_start = os.getloadavg()
    t_start = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - t_start:7.1f} s] {message}", flush=True)

    context = Context(files)
    log(f"read {context.n_cells} cells ({', '.join(f.name for f in files[:3])}, ...); mode {mode}, grid {grid_name}")
    if len(files) != 24:
        log(f"warning: expected 24 cells, found {len(files)}")
    if args.probe:
        method, setting = args.probe[0], json.loads(args.probe[1])
        allowed = (set(FULL_GRID.get(method, {}).get("start", {})) | set(VARIANT_KEYS.get(method, ()))
                   | {stage[0] for stage in GRIDS["scale-first"].get(method, {}).get("stages", [])})
        if method not in ("ours", "baseline") or not set(FULL_GRID[method]["start"]) <= set(setting) <= allowed:
            parser.error("--probe needs the method 'ours' or 'baseline' and the keys of its grid start")
        probe_folds = [int(k) for k in args.probe_folds.split(",")]
        try:
            result = probe(context, cache, budget, method, setting, probe_folds, args.probe_species.split(","), log)
        except BudgetExceeded as stop:
            print(f"stopped: {stop}; rerun to continue")
            return 3
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"gehlenite_probe_{method}_{short_hash(setting)}_{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps({"method": method, "setting": setting, "folds": probe_folds, "result": result,
                                    "machine": machine_info()}, indent=1))
        log(f"probe results: {path}")
        return 0
    checks = {}
    if not args.skip_checks:
        checks = self_checks(context, grid)
        for name, value in checks.items():
            log(f"check {name}: {value:.3g}")
        bad = {k: v for k, v in checks.items() if not v < 1e-6}
        if bad:
            print(f"self-checks failed: {bad}")
            return 2

    try:
        inner, chosen, history = {}, {}, {}
        for method in METHODS:
            log(f"hyper-parameter search: {method}")
            inner[method] = InnerCV(method, context, cache, budget, log)
            chosen[method], history[method] = search(method, grid[method], context, folds, inner[method])
        final: dict = {m: {} for m in METHODS}
        for k in folds:
            test_cells = context.cells_of_folds([k])
            train_cells = [c for c in range(context.n_cells) if c not in test_cells]
            for method in METHODS:
                picked = {sp: chosen[method][sp][str(k)] for sp in SPECIES}
                final[method][k] = cached_fit(cache, budget, f"final {method} fold {k}", method, context,
                                              picked, train_cells, test_cells, log)
        curve: dict = {m: {} for m in METHODS}
        if not args.no_learning_curve:
            k = LEARNING_CURVE_FOLD
            test_cells = context.cells_of_folds([k])
            pool = [c for c in range(context.n_cells) if c not in test_cells]
            order = list(np.random.default_rng(0).permutation(pool))
            for n in sizes:
                train_cells = sorted(int(c) for c in order[:n])
                for method in METHODS:
                    picked = {sp: chosen[method][sp][str(k)] for sp in SPECIES}
                    curve[method][str(n)] = cached_fit(cache, budget, f"curve {method} fold {k}, {n} cells", method,
                                                       context, picked, train_cells, test_cells, log)
    except BudgetExceeded as stop:
        cache.flush()
        print(f"stopped: {stop}; the work done so far is cached in {cache_dir}: rerun the same command to continue")
        return 3

    summary = aggregate(final)
    table = markdown_tables(summary)
    print()
    print(table)
    wins = {m: {sp: summary[m][sp]["efg_mae_au"]["mean"] <= summary["baseline"][sp]["efg_mae_au"]["mean"]
                for sp in SPECIES} for m in ("ours",)}
    for m in wins:
        print(f"{METHOD_LABELS[m]} matches or beats featomic on the component MAE for every species: "
              f"{all(wins[m].values())} {wins[m]}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    figure = None
    if curve["ours"]:
        figure = (results_dir / "gehlenite_learning_curve_quick.png" if args.quick
                  else REPO / "docs" / "figures" / ("gehlenite_learning_curve.png" if grid_name == "scale-first"
                                                    else f"gehlenite_learning_curve_{grid_name}.png"))
        learning_curve_figure(curve, figure, f"gehlenite EFG, outer fold {LEARNING_CURVE_FOLD} "
                                             f"({len(context.cells_of_folds([LEARNING_CURVE_FOLD]))} test cells), "
                                             f"grid '{grid_name}', hyper-parameters tuned on the full training side")
        log(f"figure: {figure}")
    output = {
        "mode": mode,
        "grid_name": grid_name,
        "protocol": {"outer_folds": N_OUTER, "fold_of_cell": {f.name: int(k) for f, k in zip(files, context.fold_of_cell)},
                     "inner": "grouped 4-fold: the other four outer folds", "score": "inner-CV MAE of the six "
                     "independent EFG components (a.u.)", "alpha_grid": ALPHAS, "alpha_start": ALPHAS[ALPHA_START_INDEX],
                     "grids": grid, "learning_curve_fold": LEARNING_CURVE_FOLD, "learning_curve_sizes": list(sizes)},
        "self_checks": checks,
        "chosen": chosen,
        "search_history": history,
        "tuning_seconds": {m: scores.tuning_seconds() for m, scores in inner.items()},
        "final": {m: {str(k): v for k, v in per.items()} for m, per in final.items()},
        "summary": summary,
        "wins": wins,
        "ours_wins_every_species": all(wins["ours"].values()),
        "learning_curve": curve,
        "figure": None if figure is None else str(figure.relative_to(REPO)),
        "machine": machine_info(),
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "wall_seconds_this_run": time.time() - t_start,
        "markdown": table,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"accuracy_gehlenite_efg_{mode}_{grid_name}_{stamp}.json"
    path.write_text(json.dumps(output, indent=1, default=float))
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
