#!/usr/bin/env python
"""Calibration check of the committee uncertainty on the Venetos 29Si and gehlenite EFG sets.

Protocols (each fixed before its outer folds were run): v1 ``docs/protocols/committee_calibration.md``
(calibration "power"), v2 ``docs/protocols/committee_calibration_v2.md`` (``--protocol v2``:
calibration "power_eiv", new outer splits). Run from the repository root (package built in place)::

    PYTHONPATH=. python bench/calibration_committee.py venetos              # outer folds
    PYTHONPATH=. python bench/calibration_committee.py gehlenite
    PYTHONPATH=. python bench/calibration_committee.py venetos --dev        # training side only
    PYTHONPATH=. python bench/calibration_committee.py --plot               # figure from the JSONs
    PYTHONPATH=. python bench/calibration_committee.py --cost               # training CPU time
    PYTHONPATH=. python bench/calibration_committee.py venetos --protocol v2 [--dev]
    PYTHONPATH=.:bench python bench/calibration_committee.py --explore-v3          # training side only
    PYTHONPATH=.:bench python bench/calibration_committee.py --explore-variance    # training side only
    PYTHONPATH=.:bench python bench/calibration_committee.py --explore-variance-gehlenite

Outer folds: Venetos, the 5 grouped outer folds of ``bench/accuracy_venetos_si.py`` (same
seed and ``venetos_dev_groups.csv`` groups), with the hyper-parameters that
docs/accuracy_venetos.md chose per fold; gehlenite, the cell folds of
``bench/accuracy_gehlenite_efg.py`` (cell i in fold i % 5) with one fixed configuration.
``--dev`` never touches an outer test fold (how the method was developed): Venetos, the
four inner folds of outer fold 0's training side, each in turn the test fold; gehlenite,
outer fold 0's training side with outer fold 1 as the test fold. ``--protocol v2``: Venetos,
the outer folds of docs/protocols/venetos_model_selection.md (seed 20261130) with the
settings that run chose per fold (docs/accuracy_venetos.md, "Chosen settings, ours");
gehlenite, a seeded grouped assignment of the cells to 5 folds (seed 20261201), the same
fixed model; ``--dev`` then uses the 4 inner folds of every outer training side (Venetos)
and the outer training sides 0, 2, 4 with folds 1, 3, 0 as test folds (gehlenite).

Per element and property, pooled over the folds (σiso; the 5 spherical components of
σ(2) and of the EFG pooled): coverage of |e| ≤ u and ≤ 2u (targets 68 ± 7 % and 95 ± 4 %),
Gaussian NLL = mean(½ log 2πu² + e²/2u²) against the NLL of a constant σ: primary, the
RMS of the model's own out-of-sample training residuals (fitted without test data, as u
is); secondary, the RMS of the pooled test errors (an oracle). JSON in
``bench/results/calibration_committee_<set>[_v2][_dev].json``; ``--plot`` draws the reliability
plot ``docs/figures/committee_reliability[_v2].png`` from the outer-fold JSONs.

``--explore-v3`` (OOD residual in the law) and ``--explore-variance`` (learned per-site
variances, docs/protocols/committee_calibration_v3_explore.md) look at Venetos σiso on the
inner folds of new outer training sides only (:func:`held_out_inner_sites`); JSON in
``bench/results/calibration_committee_venetos_v3_{explore,variance}.json``.
``--explore-variance-gehlenite`` does the same for gehlenite Al EFG
(docs/protocols/committee_calibration_v3_explore_gehlenite.md; JSON
``calibration_committee_gehlenite_v3_variance.json``).
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import erf  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ase_mlnmr.core.spherical_tensors import symmetric_traceless_to_l2  # noqa: E402
from ase_mlnmr.nmr_model import NMRModel  # noqa: E402

#: docs/accuracy_venetos.md, "Chosen hyper-parameters" (per outer fold): ζ, n_inducing, ridge; σ(2) α = 1000.
VENETOS_CHOSEN = {0: (1, 150, 0.01), 1: (3, 2000, 0.03), 2: (1, 300, 0.01), 3: (1, 300, 0.01), 4: (1, 150, 0.003)}
VENETOS_DESCRIPTOR = {"r_cut": 4.5, "n_max": 4, "l_max": 8, "sigma": 0.4, "mixing_channels": 8}
#: gehlenite: one fixed configuration for every fold and element (the protocol's).
GEHLENITE_DESCRIPTOR = {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.4}
GEHLENITE_SPECIES = ("Al", "O", "Ca", "Si")
COMMITTEE = {"size": 8, "fraction": 0.5, "seed": 0, "calibration": "power"}
#: protocol v2 (docs/protocols/committee_calibration_v2.md): Venetos folds of the model-selection
#: protocol and, per fold, its chosen (r_cut, n_max, l_max, σ, channels, ζ, ridge); n_inducing 150, σ(2) α 1000.
VENETOS_V2_SEED = 20261130
VENETOS_V2_CHOSEN = {0: (5.0, 4, 8, 0.4, 8, 1, 0.03), 1: (5.0, 4, 6, 0.4, 8, 2, 0.1), 2: (5.0, 4, 6, 0.5, 8, 2, 0.1),
                     3: (4.5, 4, 6, 0.4, 8, 2, 0.03), 4: (5.0, 4, 8, 0.4, 8, 1, 0.03)}
GEHLENITE_V2_SEED = 20261201
GEHLENITE_V2_DEV = ((0, 1), (2, 3), (4, 0))  # (outer training side, its fold that plays the test fold)
RESULTS = HERE / "results"
FIGURE = HERE.parent / "docs" / "figures" / "committee_reliability.png"
#: pass bands of the protocol
BAND_1SIGMA, BAND_2SIGMA = (0.61, 0.75), (0.91, 0.99)


def gaussian_nll(errors: np.ndarray, variance) -> np.ndarray:
    """½ log(2π u²) + e²/(2u²) per value, u² = ``variance``."""
    return 0.5 * np.log(2 * np.pi * variance) + 0.5 * errors**2 / variance


def scores(errors: np.ndarray, u: np.ndarray, constant: np.ndarray) -> dict:
    """Coverage and NLL of u; NLL of the constant σ ``constant`` (per scalar: the training-side
    σ of the fold model that predicted it) and of the oracle σ = RMS of the test errors."""
    z = np.abs(errors) / u
    oracle = float(np.sqrt(np.mean(errors**2)))

    def nll(scale):
        return float(np.mean(gaussian_nll(errors, scale**2)))

    out = {"n": int(errors.size), "coverage_1sigma": float(np.mean(z <= 1)), "coverage_2sigma": float(np.mean(z <= 2)),
           "nll": nll(u), "nll_constant_sigma": nll(constant),
           "constant_sigma_rms": float(np.sqrt(np.mean(constant**2))),
           "nll_oracle_constant_sigma": nll(oracle), "oracle_constant_sigma": oracle,
           "mean_u": float(np.mean(u)), "mae": float(np.mean(np.abs(errors)))}
    out["passes"] = bool(BAND_1SIGMA[0] <= out["coverage_1sigma"] <= BAND_1SIGMA[1]
                         and BAND_2SIGMA[0] <= out["coverage_2sigma"] <= BAND_2SIGMA[1]
                         and out["nll"] < out["nll_constant_sigma"])
    return out


def calibration_of(regressor) -> dict:
    """The fitted law (a, b, c), the constant σ and, for "power_eiv", the shrinkage weight w
    folded into (a, c) (None for the other calibrations)."""
    return {"scale": regressor.calibration_, "power": regressor.calibration_power_,
            "floor": regressor.calibration_floor_, "constant_sigma": regressor.calibration_constant_sigma_,
            "shrinkage_weight": regressor.calibration_shrinkage_weight_}


def venetos_config(species, fold: int, v2: bool, properties=("ms_iso", "ms_aniso")) -> dict:
    """Training configuration (no committee) of Venetos outer ``fold``: v1, the settings
    docs/accuracy_venetos.md chose on the old folds; v2, those the model-selection protocol
    chose on the seed-20261130 folds (Nyström size 150); σ(2) α = 1000."""
    from accuracy_venetos_si import our_config

    if v2:
        r_cut, n_max, l_max, sigma, channels, zeta, ridge = VENETOS_V2_CHOSEN[fold]
        descriptor = {"r_cut": r_cut, "n_max": n_max, "l_max": l_max, "sigma": sigma, "mixing_channels": channels}
        n_inducing = 150
    else:
        (zeta, n_inducing, ridge), descriptor = VENETOS_CHOSEN[fold], VENETOS_DESCRIPTOR
    return our_config(species, descriptor, {"kernel": "dot_product", "zeta": zeta, "n_inducing": n_inducing,
                                            "ridge": ridge}, 1000.0, properties=properties)


def venetos_runs(dev: bool, v2: bool, committee: dict):
    """(label, model, test structures, per-structure (errors, u) collector) per fold."""
    from accuracy_venetos_si import N_INNER, N_OUTER, SEED, Data

    seed = VENETOS_V2_SEED if v2 else SEED
    data = Data(seed)
    dev_outer = range(N_OUTER) if v2 else [0]
    for fold, inner in ([(f, k) for f in dev_outer for k in range(N_INNER)] if dev else
                        [(f, None) for f in range(N_OUTER)]):
        config = venetos_config(data.species, fold, v2)
        config["committee"] = dict(committee)
        train_s, test_s, train_rows, _ = data.outer(fold)
        if dev:  # an inner fold of the outer training side plays the test fold
            train_pos, test_pos = data.inner_splits(train_rows, fold, seed)[inner]
            train_s = np.unique(data.sel.structure_index[train_rows[train_pos]])
            test_s = np.unique(data.sel.structure_index[train_rows[test_pos]])
        start = time.process_time()
        model = NMRModel.train(data.dataset, config, progress=False, structure_indices=train_s,
                               structure_groups=data.structure_groups)
        cpu = time.process_time() - start
        out = {("Si", "ms_iso"): ([], []), ("Si", "ms_aniso"): ([], [])}
        for s in test_s:
            prediction = model.predict(data.dataset.structures[s], unknown_species="skip", outputs=("shielding",))
            rows = data.sites([s])
            atoms = data.sel.atom_index[rows]
            out["Si", "ms_iso"][0].append(data.y[rows] - prediction.ms_iso[atoms])
            out["Si", "ms_iso"][1].append(prediction.ms_iso_std[atoms])
            out["Si", "ms_aniso"][0].append((data.l2[rows] - prediction.ms_aniso[atoms]).ravel())
            out["Si", "ms_aniso"][1].append(prediction.ms_aniso_std[atoms].ravel())
        yield fold if inner is None else f"{fold}/inner {inner}", model, cpu, out


def gehlenite_setup(v2: bool, committee: dict, species=GEHLENITE_SPECIES, seed: int = GEHLENITE_V2_SEED):
    """(dataset, outer fold of each cell, training config) of the protocol's gehlenite model
    for ``species``; folds: v2, ``fold_assignment(24, 5, seed=seed)``, else v1's cell i in fold i % 5."""
    from accuracy_gehlenite_efg import data_files, outer_fold_of_cells
    from ase_mlnmr.training.dataset import read_tensor_dataset
    from ase_mlnmr.training.model_selection import fold_assignment

    files = data_files()
    if not files:
        sys.exit("gehlenite data not found (set ASE_MLNMR_SHARED to the shared folder)")
    dataset = read_tensor_dataset([str(f) for f in files], properties=["efg"])
    config = {"species": {el: {"properties": ["efg"]} for el in species},
              "descriptor": dict(GEHLENITE_DESCRIPTOR),
              "efg": {"alpha": "auto", "feature_scaling": "global", "two_body": True},
              "committee": dict(committee)}
    folds = fold_assignment(len(dataset), 5, seed=seed) if v2 else outer_fold_of_cells(len(dataset))
    return dataset, folds, config


def gehlenite_test_errors(model, dataset, test, species=GEHLENITE_SPECIES, site_data: dict | None = None) -> dict:
    """Per element: (EFG λ = 2 component errors, their predicted u) over the test cells (a.u.).
    ``site_data``, if given, gets per element the atoms' OOD residual ρ (``"rho"``) and their
    SOAP power spectrum of the element's OOD descriptor scaled to unit length (``"features"``)."""
    out = {el: ([], []) for el in species}
    for cell in test:
        atoms = dataset.structures[cell]
        prediction = model.predict(atoms, unknown_species="skip",
                                   outputs=("efg",) if site_data is None else ("efg", "ood"))
        symbols = np.array(atoms.get_chemical_symbols())
        for el in species:
            rows = np.flatnonzero(dataset.masks["efg"][cell] & (symbols == el))
            reference = symmetric_traceless_to_l2(dataset.tensors["efg"][cell][rows])
            out[el][0].append((reference - symmetric_traceless_to_l2(prediction.efg[rows])).ravel())
            out[el][1].append(prediction.efg_std[rows].ravel())
            if site_data is not None:
                entry = site_data.setdefault(el, {"rho": [], "features": []})
                entry["rho"].append(prediction.ood_residual[rows])
                x = model.ood_models[el][0].create(atoms, centres=rows)
                entry["features"].append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out


def gehlenite_runs(dev: bool, v2: bool, committee: dict):
    dataset, fold_of_cell, config = gehlenite_setup(v2, committee)
    splits = (GEHLENITE_V2_DEV if v2 else ((0, 1),)) if dev else [(f, None) for f in range(int(fold_of_cell.max()) + 1)]
    for fold, inner in splits:
        train = np.flatnonzero(fold_of_cell != fold)
        test = np.flatnonzero(fold_of_cell == fold)
        if dev:  # one of the other outer folds (the inner folds of the accuracy benchmark) plays the test fold
            test = train[fold_of_cell[train] == inner]
            train = train[fold_of_cell[train] != inner]
        start = time.process_time()
        model = NMRModel.train(dataset, config, progress=False, structure_indices=train)
        cpu = time.process_time() - start
        out = {(el, "efg"): pair for el, pair in gehlenite_test_errors(model, dataset, test).items()}
        yield fold if inner is None else f"{fold}/inner {inner}", model, cpu, out


def run(name: str, dev: bool, protocol: str = "v1") -> None:
    """Every fold, then the pooled scores; the JSON is rewritten after every fold (with the
    folds done so far), so an interrupted run keeps what it measured."""
    v2 = protocol == "v2"
    committee = {**COMMITTEE, "calibration": "power_eiv"} if v2 else COMMITTEE
    runs = venetos_runs(dev, v2, committee) if name == "venetos" else gehlenite_runs(dev, v2, committee)
    pooled: dict = {}
    folds = []
    for fold, model, cpu, out in runs:
        calibration = {f"{el} {prop}": calibration_of(model.models[el, prop].regressor) for el, prop in out}
        folds.append({"fold": fold, "train_cpu_s": cpu, "calibration": calibration})
        for key, (errors, spreads) in out.items():
            entry = pooled.setdefault(key, {"errors": [], "u": [], "constant": []})
            e = np.concatenate(errors)
            entry["errors"].append(e)
            entry["u"].append(np.concatenate(spreads))
            entry["constant"].append(np.full(e.size, calibration[f"{key[0]} {key[1]}"]["constant_sigma"]))
        print(f"{name} fold {fold}: train {cpu:.0f} s CPU, {json.dumps(calibration)}", flush=True)
        result = {"set": name, "dev": dev, "protocol": protocol, "committee": committee, "folds": folds,
                  "pooled": {}}
        for (el, prop), entry in pooled.items():
            e, u = np.concatenate(entry["errors"]), np.concatenate(entry["u"])
            score = scores(e, u, np.concatenate(entry["constant"]))
            score["z"] = (np.abs(e) / u).tolist()
            result["pooled"][f"{el} {prop}"] = score
        result["loadavg"] = os.getloadavg()
        RESULTS.mkdir(exist_ok=True)
        suffix = ("_v2" if v2 else "") + ("_dev" if dev else "")
        (RESULTS / f"calibration_committee_{name}{suffix}.json").write_text(json.dumps(result, indent=1))
    for key, score in result["pooled"].items():
        print(f"{key}: " + json.dumps({k: v for k, v in score.items() if k != "z"}), flush=True)


def cost(repeats: int = 2) -> None:
    """CPU time of training (Venetos outer fold 0 training side, σiso + σ(2)) without a
    committee, with "scale", "power" and "power_eiv", interleaved in one process."""
    from accuracy_venetos_si import SEED, Data

    data = Data(SEED)
    base = venetos_config(data.species, 0, v2=False)
    train_s = data.outer(0)[0]
    variants = {"no committee": None, "scale": "scale", "power": "power", "power_eiv": "power_eiv"}
    times: dict = {name: [] for name in variants}
    for _ in range(repeats):
        for name, method in variants.items():
            config = dict(base)
            if method:
                config["committee"] = {**COMMITTEE, "calibration": method}
            start = time.process_time()
            NMRModel.train(data.dataset, config, progress=False, structure_indices=train_s,
                           structure_groups=data.structure_groups)
            times[name].append(time.process_time() - start)
    result = {name: min(values) for name, values in times.items()}
    result["loadavg"] = os.getloadavg()
    print(json.dumps({"train_cpu_s_min": result, "all": times}), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration_committee_cost.json").write_text(json.dumps({"min": result, "all": times}, indent=1))


def plot(protocol: str = "v1") -> None:
    """Reliability plot of one protocol's outer-fold JSONs; v2 also draws v1's (dashed) when present."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.linspace(0.05, 3.0, 60)
    nominal = erf(k / np.sqrt(2))
    fig, ax = plt.subplots(figsize=(5.0, 4.6))
    labels = {"Si ms_iso": "Venetos 29Si σiso", "Si ms_aniso": "Venetos 29Si σ(2)"}
    drawn = [("", "-", "")] if protocol == "v1" else [("_v2", "-", " (v2)"), ("", "--", " (v1)")]
    for suffix, style, tag in drawn:
        for i, name in enumerate(("venetos", "gehlenite")):
            path = RESULTS / f"calibration_committee_{name}{suffix}.json"
            if not path.is_file():
                continue
            for j, (key, score) in enumerate(json.loads(path.read_text())["pooled"].items()):
                z = np.asarray(score["z"])
                label = labels[key] if name == "venetos" else f"gehlenite {key.split()[0]} EFG"
                ax.plot(nominal, [np.mean(z <= kk) for kk in k], style, color=f"C{4 * i + j}", label=label + tag)
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="ideal")
    for level, band in ((erf(1 / np.sqrt(2)), BAND_1SIGMA), (erf(2 / np.sqrt(2)), BAND_2SIGMA)):
        ax.plot([level, level], band, "k-", lw=3, alpha=0.3)
    ax.set_xlabel("nominal coverage of ±k·u (Gaussian)")
    ax.set_ylabel("observed coverage, outer test folds")
    method = '"power"' if protocol == "v1" else '"power_eiv" (v2)'
    ax.set_title(f"committee K = 8, f = 0.5, calibration {method}\n(grey bars: pass bands at ±1u, ±2u)", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    figure = FIGURE if protocol == "v1" else FIGURE.with_name(f"{FIGURE.stem}_v2.png")
    fig.savefig(figure, dpi=120)
    print(f"plot: {figure}")


#: training-side exploration for a σiso calibration with the out-of-domain residual (issue 13, v3 candidate):
#: new Venetos outer splits, their inner splits only; one fixed setting (VENETOS_V2_CHOSEN[0]) for every fold.
VENETOS_V3_SEED = 20261202
#: training-side exploration of learned per-site variances (docs/protocols/committee_calibration_v3_explore.md)
VENETOS_V3_VARIANCE_SEED = 20261203
#: Venetos σiso squared errors are floored here (ppm²) before their log
SQUARED_ERROR_FLOOR = 1e-4
#: gehlenite Al EFG (docs/protocols/committee_calibration_v3_explore_gehlenite.md): outer-fold seed,
#: element, floor of the per-atom mean squared component error (a.u.²)
GEHLENITE_V3_VARIANCE_SEED = 20261204
GEHLENITE_V3_VARIANCE_ELEMENT = "Al"
GEHLENITE_SQUARED_ERROR_FLOOR = 1e-12
#: ridge grid of the kernel log-variance models (chosen per fit by leave-one-inner-fold-out CV)
VARIANCE_RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
#: neighbours of the local-RMS candidate
VARIANCE_NEIGHBOURS = 25
FIGURE_V3_VARIANCE = FIGURE.with_name("committee_reliability_v3_variance.png")
FIGURE_V3_VARIANCE_GEHLENITE = FIGURE.with_name("committee_reliability_v3_variance_gehlenite_al.png")


def held_out_inner_sites(seed: int, features: bool = False):
    """Training side only: Venetos outer folds of ``Data(seed)``, each outer training side
    split into its 4 grouped inner folds (``inner_splits``, seed + 1 + outer fold); a model
    (settings of VENETOS_V2_CHOSEN[0], σiso, committee "power_eiv") trained on 3 inner folds
    predicts the 4th. Returns the records (outer fold, inner fold, error e (ppm), v2's u
    (ppm), OOD residual ρ) of every held-out site, with ``features`` also their σiso
    features as the model's kernel sees them (row-normalised SOAP power spectrum), else
    None, and the training config. No outer test fold is predicted."""
    from accuracy_venetos_si import N_OUTER, Data

    data = Data(seed)
    config = venetos_config(data.species, 0, v2=True, properties=("ms_iso",))
    config["committee"] = {**COMMITTEE, "calibration": "power_eiv"}
    records, feature_rows = [], []
    for fold in range(N_OUTER):
        train_rows = data.outer(fold)[2]
        for inner, (train_pos, test_pos) in enumerate(data.inner_splits(train_rows, fold, seed)):
            train_s = np.unique(data.sel.structure_index[train_rows[train_pos]])
            model = NMRModel.train(data.dataset, config, progress=False, structure_indices=train_s,
                                   structure_groups=data.structure_groups)
            iso = model.models["Si", "ms_iso"]
            for s in np.unique(data.sel.structure_index[train_rows[test_pos]]):
                structure = data.dataset.structures[s]
                prediction = model.predict(structure, unknown_species="skip", outputs=("shielding", "ood"))
                rows = data.sites([s])
                atoms = data.sel.atom_index[rows]
                for row, atom in zip(rows, atoms):
                    records.append((fold, inner, data.y[row] - prediction.ms_iso[atom], prediction.ms_iso_std[atom],
                                    prediction.ood_residual[atom]))
                if features:
                    feature_rows.append(iso.regressor.transform(iso.features(structure, atoms)))
            print(f"outer {fold} inner {inner}: {len(records)} held-out sites so far", flush=True)
    return records, (np.vstack(feature_rows) if features else None), config


def cross_fitted(fold: np.ndarray, inner: np.ndarray, law, shape: tuple = ()) -> np.ndarray:
    """u of every held-out site (``shape`` values each) from ``law(fit, score)`` (boolean masks
    of the sites), fitted on the other 3 inner folds of the site's outer fold and applied to
    its own (cross-fitting)."""
    out = np.empty((fold.size,) + tuple(shape))
    for f in np.unique(fold):
        for k in np.unique(inner[fold == f]):
            score = (fold == f) & (inner == k)
            out[score] = law((fold == f) & (inner != k), score)
    return out


def two_term_variance(errors: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """(A, B) > 0 maximising Σ log N(e; 0, A·first + B·second) (Nelder–Mead in log A, log B
    from A = 1, B = mean e² / mean second)."""
    from scipy.optimize import minimize

    best = minimize(lambda t: float(np.sum(gaussian_nll(errors, np.exp(t[0]) * first + np.exp(t[1]) * second))),
                    np.array([0.0, np.log(np.mean(errors**2) / max(np.mean(second), 1e-12))]), method="Nelder-Mead")
    return tuple(float(v) for v in np.exp(best.x))


def coverage_summary(errors: np.ndarray, scored: dict) -> dict:
    """±1u and ±2u coverage, mean Gaussian NLL and mean u of every law's u (pooled)."""
    return {name: {"coverage_1sigma": float(np.mean(np.abs(errors) <= v)),
                   "coverage_2sigma": float(np.mean(np.abs(errors) <= 2 * v)),
                   "nll": float(np.mean(gaussian_nll(errors, v**2))), "mean_u": float(np.mean(v))}
            for name, v in scored.items()}


def explore_v3() -> None:
    """Training side only: does the Nyström out-of-domain residual separate the σiso errors
    that the v2 uncertainty misses? Held-out inner sites of the seed-20261202 outer folds
    (:func:`held_out_inner_sites`): error e, v2's u, OOD residual ρ.
    Candidate u² = A u_v2² + g² ρ (A, g ≥ 0 by Gaussian maximum likelihood) fitted on 3 of the
    4 held-out inner folds of an outer fold and scored on the 4th (cross-fitting), against
    u_v2 as is and a constant σ fitted the same way. No outer test fold is predicted.
    Decision rule (written before the first complete run): a v3 protocol with ρ in the law is
    worth writing only if the cross-fitted candidate has ±1u within 61–75 %, ±2u within
    91–99 % and a lower NLL than u_v2 on these pooled inner pairs."""
    from scipy.stats import spearmanr

    records = held_out_inner_sites(VENETOS_V3_SEED)[0]
    fold, inner, e, u, rho = (np.array(c) for c in zip(*records))
    fits = []

    def rho_law(fit: np.ndarray, score: np.ndarray) -> np.ndarray:
        A, g2 = two_term_variance(e[fit], u[fit] ** 2, rho[fit])
        fits.append([int(fold[score][0]), int(inner[score][0]), A, g2])
        return np.sqrt(A * u[score] ** 2 + g2 * rho[score])

    scored = {"u_v2": u, "constant": cross_fitted(fold, inner, lambda fit, score: np.sqrt(np.mean(e[fit] ** 2))),
              "A u_v2^2 + g^2 rho": cross_fitted(fold, inner, rho_law)}
    summary = coverage_summary(e, scored)
    summary["n_sites"] = int(e.size)
    summary["spearman_abs_error_rho"] = float(spearmanr(np.abs(e), rho)[0])
    summary["spearman_abs_z_rho"] = float(spearmanr(np.abs(e) / u, rho)[0])
    summary["spearman_abs_error_u"] = float(spearmanr(np.abs(e), u)[0])
    summary["fits"] = fits
    summary["loadavg"] = os.getloadavg()
    print(json.dumps(summary, indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration_committee_venetos_v3_explore.json").write_text(json.dumps(
        {"summary": summary, "records": [list(map(float, r)) for r in records]}, indent=1))


def variance_kernel(features: np.ndarray, other: np.ndarray, zeta: int) -> np.ndarray:
    """The σiso model's dot-product kernel (x̂·ŷ)^ζ between rows of unit-length features."""
    from ase_mlnmr.models.nystrom import _kernel_block

    return _kernel_block(features, other, np.ones(len(features)), np.ones(len(other)), 1.0, "dot_product", zeta)


def mean_log_chi2(dof: int) -> float:
    """E[log(χ²_d / d)] = ψ(d/2) + log(2/d): the mean of log(mean_μ e_μ² / σ²) for d Gaussian
    components e_μ of variance σ² (−1.2704 for d = 1)."""
    from scipy.special import digamma

    return float(digamma(dof / 2) + np.log(2 / dof))


def log_variance_least_squares(kernel: np.ndarray, mean_square: np.ndarray, dof: int,
                               ridge: float) -> tuple[float, np.ndarray]:
    """Kernel ridge of t = log s² − E[log(χ²_d/d)], s² the site's mean squared error over its d
    components (floored), an unbiased estimate of log σ² for Gaussian errors:
    f(x) = m + k(x)ᵀc, m = mean t, c = (K + ridge I)⁻¹ (t − m)."""
    from scipy.linalg import cho_factor, cho_solve

    targets = np.log(mean_square) - mean_log_chi2(dof)
    mean = float(targets.mean())
    return mean, cho_solve(cho_factor(kernel + ridge * np.eye(len(kernel))), targets - mean)


def log_variance_likelihood(kernel: np.ndarray, mean_square: np.ndarray, dof: int,
                            ridge: float) -> tuple[float, np.ndarray]:
    """Kernel log variance f(x) = m + k(x)ᵀc by Gaussian maximum likelihood: (m, c) minimise
    Σ_i (d/2) [f_i + s_i² exp(−f_i)] + ½ ridge cᵀKc, s_i² the mean squared error over the d
    components (L-BFGS-B, analytic gradient, from m = log mean s², c = 0)."""
    from scipy.optimize import minimize

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        kc = kernel @ theta[1:]
        f = np.clip(theta[0] + kc, -50.0, 50.0)
        weighted = mean_square * np.exp(-f)
        gradient = 0.5 * dof * (1.0 - weighted)
        value = 0.5 * dof * float(np.sum(f + weighted)) + 0.5 * ridge * float(theta[1:] @ kc)
        return value, np.concatenate([[gradient.sum()], kernel @ gradient + ridge * kc])

    start = np.concatenate([[np.log(np.mean(mean_square))], np.zeros(len(kernel))])
    best = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return float(best.x[0]), best.x[1:]


def learned_variance_laws(e: np.ndarray, u: np.ndarray, kernel: np.ndarray, fit: np.ndarray, score: np.ndarray,
                          groups: np.ndarray, record: dict, floor: float) -> dict:
    """u of the ``score`` sites under each learned-variance candidate, fitted on the ``fit``
    sites only (``groups``: their inner folds, for the ridge CV). ``e``, ``u``: (n,) or (n, d)
    (the d components of a site share one learned variance; s² = the site's mean squared
    error, floored at ``floor``). Candidates (a) and (d): exp(f(x)) with f the kernel log
    variance by least squares or Gaussian likelihood, ridge from VARIANCE_RIDGES by
    leave-one-inner-fold-out CV within the fit sites (score: mean Gaussian NLL of the
    left-out sites under u² = exp(f)); (b) A u_v2² + B exp(f_a(x)), A, B by Gaussian ML on the
    fit sites with their out-of-fold f_a at the chosen ridge; (c) the RMS error of the
    VARIANCE_NEIGHBOURS fit sites of largest kernel value."""
    fit_idx, score_idx = np.flatnonzero(fit), np.flatnonzero(score)
    k_fit = kernel[np.ix_(fit_idx, fit_idx)]
    k_score = kernel[np.ix_(score_idx, fit_idx)]
    e_fit = e[fit_idx]
    squares = e.reshape(len(e), -1) ** 2
    dof = squares.shape[1]
    mean_square = np.maximum(squares.mean(axis=1), floor)[fit_idx]
    per_site = (-1,) + (1,) * (e.ndim - 1)  # a site's variance, broadcast over its components

    def as_u(variance: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.sqrt(variance).reshape(per_site), u[score_idx].shape)

    out = {}
    for label, solver in (("a", log_variance_least_squares), ("d", log_variance_likelihood)):
        out_of_fold = {}
        for ridge in VARIANCE_RIDGES:
            f = np.empty(fit_idx.size)
            for g in np.unique(groups):
                held, kept = groups == g, groups != g
                mean, c = solver(k_fit[np.ix_(kept, kept)], mean_square[kept], dof, ridge)
                f[held] = mean + k_fit[np.ix_(held, kept)] @ c
            out_of_fold[ridge] = f
        cv = {ridge: float(np.mean(gaussian_nll(e_fit, np.exp(f).reshape(per_site))))
              for ridge, f in out_of_fold.items()}
        ridge = min(cv, key=cv.get)
        mean, c = solver(k_fit, mean_square, dof, ridge)
        variance = np.exp(mean + k_score @ c)
        out[label] = as_u(variance)
        record[label] = {"ridge": ridge, "cv_nll": cv}
        if label == "a":
            A, B = two_term_variance(e_fit, u[fit_idx] ** 2, np.exp(out_of_fold[ridge]).reshape(per_site))
            out["b"] = np.sqrt(A * u[score_idx] ** 2 + B * variance.reshape(per_site))
            record["b"] = {"A": A, "B": B}
    nearest = np.argpartition(-k_score, VARIANCE_NEIGHBOURS - 1, axis=1)[:, :VARIANCE_NEIGHBOURS]
    out["c"] = as_u(np.mean(squares[fit_idx][nearest], axis=(1, 2)))
    return out


#: candidate labels of the learned-variance exploration (the protocol's names)
VARIANCE_CANDIDATES = {"a": "(a) exp f, kernel log-variance, least squares on log e²",
                       "b": "(b) A u_v2² + B exp f_a",
                       "c": f"(c) local RMS of {VARIANCE_NEIGHBOURS} nearest held-out errors",
                       "d": "(d) exp f, kernel log-variance, Gaussian likelihood"}


def explore_learned_variance(fold: np.ndarray, inner: np.ndarray, e: np.ndarray, u: np.ndarray, rho: np.ndarray,
                             features: np.ndarray, zeta: int, floor: float, beat: tuple[str, ...], name: str,
                             figure: Path, title: str) -> None:
    """Score the candidates of :func:`learned_variance_laws` on held-out inner sites: each
    fitted on 3 of the 4 held-out inner folds of an outer fold and scored on the 4th
    (:func:`cross_fitted`), against u_v2 and a constant σ (RMS of the fit sites' errors)
    fitted the same way. ``e``, ``u``: (n,) or (n, d) per site (coverage and NLL pooled over
    the components); ``features``: unit-length rows of the kernel (x̂·ŷ)^ζ. A candidate meets
    the rule when its pooled ±1u and ±2u lie in the bands and its NLL is below that of every
    reference in ``beat``. Summary and records to ``bench/results/calibration_committee_{name}.json``."""
    from scipy.stats import spearmanr

    kernels = {f: variance_kernel(features[fold == f], features[fold == f], zeta) for f in np.unique(fold)}
    fits, cache = [], {}

    def law(label: str):
        def apply(fit: np.ndarray, score: np.ndarray) -> np.ndarray:
            f = int(fold[score][0])
            key = (f, int(inner[score][0]))
            if key not in cache:
                rows = np.flatnonzero(fold == f)
                record = {"fold": key[0], "inner": key[1]}
                cache[key] = learned_variance_laws(e[rows], u[rows], kernels[f], fit[rows], score[rows],
                                                   inner[rows][fit[rows]], record, floor)
                fits.append(record)
            return cache[key][label]
        return apply

    scored = {"u_v2": u, "constant": cross_fitted(fold, inner, lambda fit, score: np.sqrt(np.mean(e[fit] ** 2)),
                                                  e.shape[1:])}
    for label, candidate in VARIANCE_CANDIDATES.items():
        scored[candidate] = cross_fitted(fold, inner, law(label), e.shape[1:])
    summary = coverage_summary(e, scored)
    site_error = np.sqrt(np.mean(e.reshape(len(e), -1) ** 2, axis=1))
    for label, v in scored.items():
        if label != "constant":
            summary[label]["spearman_abs_error_u"] = float(
                spearmanr(site_error, np.sqrt(np.mean(v.reshape(len(v), -1) ** 2, axis=1)))[0])
        summary[label]["meets_rule"] = bool(
            BAND_1SIGMA[0] <= summary[label]["coverage_1sigma"] <= BAND_1SIGMA[1]
            and BAND_2SIGMA[0] <= summary[label]["coverage_2sigma"] <= BAND_2SIGMA[1]
            and all(summary[label]["nll"] < summary[reference]["nll"] for reference in beat))
    summary["spearman_abs_error_rho"] = float(spearmanr(site_error, rho)[0])
    summary["n_sites"], summary["n_values"] = int(len(e)), int(e.size)
    summary["rms_error"], summary["mae"] = float(np.sqrt(np.mean(e**2))), float(np.mean(np.abs(e)))
    summary["fits"] = fits
    summary["loadavg"] = os.getloadavg()
    print(json.dumps({k: v for k, v in summary.items() if k != "fits"}, indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    records = {"fold": fold.tolist(), "inner": inner.tolist(), "e": e.tolist(), "rho": rho.tolist()}
    records.update({label: v.tolist() for label, v in scored.items()})
    (RESULTS / f"calibration_committee_{name}.json").write_text(json.dumps({"summary": summary, "records": records}))
    plot_variance(e.ravel(), {label: v.ravel() for label, v in scored.items()}, figure, title)


def explore_variance() -> None:
    """Training side only (docs/protocols/committee_calibration_v3_explore.md): is the Venetos
    σiso error variance predictable from the site's environment? Held-out inner sites of the
    seed-20261203 outer folds (:func:`held_out_inner_sites`, with their features), scored by
    :func:`explore_learned_variance`; the rule: ±1u within 61–75 %, ±2u within 91–99 %, NLL
    below u_v2's."""
    records, features, config = held_out_inner_sites(VENETOS_V3_VARIANCE_SEED, features=True)
    fold, inner, e, u, rho = (np.array(c) for c in zip(*records))
    explore_learned_variance(fold.astype(int), inner.astype(int), e, u, rho, features, int(config["ms_iso"]["zeta"]),
                             SQUARED_ERROR_FLOOR, ("u_v2",), "venetos_v3_variance", FIGURE_V3_VARIANCE,
                             "Venetos σiso, training side only (seed-20261203 outer folds, inner folds)")


def explore_variance_gehlenite() -> None:
    """Training side only (docs/protocols/committee_calibration_v3_explore_gehlenite.md): the
    same candidates for gehlenite Al EFG. Cells assigned to 5 outer folds by
    ``fold_assignment(24, 5, seed=20261204)``; each outer training side split into 4 grouped
    inner folds of cells (``kfold_splits``, seed 20261204 + 1 + outer fold); the protocol's
    fixed model (Al only, committee "power_eiv") trained on 3 inner folds predicts the 4th:
    the 5 EFG component errors and u_v2 per Al atom, ρ, and the atom's SOAP power spectrum
    (the OOD descriptor, unit length; kernel ζ = 1). Rule: ±1u within 61–75 %, ±2u within
    91–99 %, NLL below u_v2's and the constant σ's (components pooled)."""
    from ase_mlnmr.training.model_selection import kfold_splits

    element = GEHLENITE_V3_VARIANCE_ELEMENT
    dataset, fold_of_cell, config = gehlenite_setup(True, {**COMMITTEE, "calibration": "power_eiv"},
                                                    species=(element,), seed=GEHLENITE_V3_VARIANCE_SEED)
    columns: dict = {"fold": [], "inner": [], "e": [], "u": []}
    site_data: dict = {}
    for fold in range(int(fold_of_cell.max()) + 1):
        train = np.flatnonzero(fold_of_cell != fold)
        splits = kfold_splits(len(train), 4, groups=train, seed=GEHLENITE_V3_VARIANCE_SEED + 1 + fold)
        for inner, (fit_pos, held_pos) in enumerate(splits):
            model = NMRModel.train(dataset, config, progress=False, structure_indices=train[fit_pos])
            errors, spreads = gehlenite_test_errors(model, dataset, train[held_pos], (element,), site_data)[element]
            e = np.concatenate(errors).reshape(-1, 5)
            columns["e"].append(e)
            columns["u"].append(np.concatenate(spreads).reshape(-1, 5))
            columns["fold"].append(np.full(len(e), fold))
            columns["inner"].append(np.full(len(e), inner))
            print(f"outer {fold} inner {inner}: {sum(map(len, columns['e']))} held-out {element} atoms so far", flush=True)
    fold, inner, e, u = (np.concatenate(columns[k]) for k in ("fold", "inner", "e", "u"))
    rho = np.concatenate(site_data[element]["rho"])
    features = np.vstack(site_data[element]["features"])
    explore_learned_variance(fold, inner, e, u, rho, features, 1, GEHLENITE_SQUARED_ERROR_FLOOR, ("u_v2", "constant"),
                             "gehlenite_v3_variance", FIGURE_V3_VARIANCE_GEHLENITE,
                             "gehlenite Al EFG, training side only (seed-20261204 outer folds, inner folds)")


def plot_variance(errors: np.ndarray, scored: dict, figure: Path, title: str) -> None:
    """Left: observed coverage of ±k·u against the Gaussian nominal one, per law (grey bars:
    the pass bands). Right: RMS error against mean u in deciles of each law's u."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.linspace(0.05, 3.0, 60)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 4.2))
    for i, (name, v) in enumerate(scored.items()):
        z = np.abs(errors) / v
        left.plot(erf(k / np.sqrt(2)), [np.mean(z <= kk) for kk in k], color=f"C{i}", label=name)
        if name != "constant":
            deciles = np.array_split(np.argsort(v), 10)
            right.plot([np.mean(v[d]) for d in deciles], [np.sqrt(np.mean(errors[d] ** 2)) for d in deciles], "o-",
                       color=f"C{i}", ms=3)
    left.plot([0, 1], [0, 1], "k:", lw=1)
    for level, band in ((erf(1 / np.sqrt(2)), BAND_1SIGMA), (erf(2 / np.sqrt(2)), BAND_2SIGMA)):
        left.plot([level, level], band, "k-", lw=3, alpha=0.3)
    left.set_xlabel("nominal coverage of ±k·u (Gaussian)")
    left.set_ylabel("observed coverage, held-out inner sites")
    left.legend(fontsize=6)
    top = 2.5 * np.sqrt(np.mean(errors**2))
    right.plot([0, top], [0, top], "k:", lw=1)
    right.set_xlabel("mean predicted u in a decile of u")
    right.set_ylabel("RMS error in that decile")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    print(f"plot: {figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", nargs="?", choices=("venetos", "gehlenite"))
    parser.add_argument("--dev", action="store_true", help="training side only (inner split of outer fold 0)")
    parser.add_argument("--plot", action="store_true", help="reliability plot from the outer-fold JSONs")
    parser.add_argument("--cost", action="store_true", help="training CPU time: no committee, scale, power, power_eiv")
    parser.add_argument("--explore-v3", action="store_true",
                        help="training side only: the OOD residual as a second σiso error predictor")
    parser.add_argument("--explore-variance", action="store_true",
                        help="training side only: learned per-site σiso variances (protocol v3_explore)")
    parser.add_argument("--explore-variance-gehlenite", action="store_true",
                        help="training side only: learned per-atom gehlenite Al EFG variances")
    parser.add_argument("--protocol", choices=("v1", "v2"), default="v1",
                        help="v1: calibration \"power\", the old splits; v2: \"power_eiv\", the new splits")
    args = parser.parse_args()
    if args.cost:
        cost()
    if args.explore_v3:
        explore_v3()
    if args.explore_variance:
        explore_variance()
    if args.explore_variance_gehlenite:
        explore_variance_gehlenite()
    if args.set:
        run(args.set, args.dev, args.protocol)
    if args.plot:
        plot(args.protocol)


if __name__ == "__main__":
    main()
