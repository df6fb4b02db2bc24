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


def scores(errors: np.ndarray, u: np.ndarray, constant: np.ndarray) -> dict:
    """Coverage and NLL of u; NLL of the constant σ ``constant`` (per scalar: the training-side
    σ of the fold model that predicted it) and of the oracle σ = RMS of the test errors."""
    z = np.abs(errors) / u
    oracle = float(np.sqrt(np.mean(errors**2)))

    def nll(scale):
        return float(np.mean(0.5 * np.log(2 * np.pi * scale**2) + 0.5 * (errors / scale) ** 2))

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
    return {"scale": regressor.calibration_, "power": regressor.calibration_power_,
            "floor": regressor.calibration_floor_, "constant_sigma": regressor.calibration_constant_sigma_}


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


def gehlenite_setup(v2: bool, committee: dict):
    """(dataset, outer fold of each cell, training config) of the protocol's gehlenite model."""
    from accuracy_gehlenite_efg import data_files, outer_fold_of_cells
    from ase_mlnmr.training.dataset import read_tensor_dataset
    from ase_mlnmr.training.model_selection import fold_assignment

    files = data_files()
    if not files:
        sys.exit("gehlenite data not found (set ASE_MLNMR_SHARED to the shared folder)")
    dataset = read_tensor_dataset([str(f) for f in files], properties=["efg"])
    config = {"species": {el: {"properties": ["efg"]} for el in GEHLENITE_SPECIES},
              "descriptor": dict(GEHLENITE_DESCRIPTOR),
              "efg": {"alpha": "auto", "feature_scaling": "global", "two_body": True},
              "committee": dict(committee)}
    folds = fold_assignment(len(dataset), 5, seed=GEHLENITE_V2_SEED) if v2 else outer_fold_of_cells(len(dataset))
    return dataset, folds, config


def gehlenite_test_errors(model, dataset, test) -> dict:
    """Per element: (EFG λ = 2 component errors, their predicted u) over the test cells (a.u.)."""
    out = {el: ([], []) for el in GEHLENITE_SPECIES}
    for cell in test:
        atoms = dataset.structures[cell]
        prediction = model.predict(atoms, outputs=("efg",))
        symbols = np.array(atoms.get_chemical_symbols())
        for el in GEHLENITE_SPECIES:
            rows = np.flatnonzero(dataset.masks["efg"][cell] & (symbols == el))
            reference = symmetric_traceless_to_l2(dataset.tensors["efg"][cell][rows])
            out[el][0].append((reference - symmetric_traceless_to_l2(prediction.efg[rows])).ravel())
            out[el][1].append(prediction.efg_std[rows].ravel())
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


def explore_v3() -> None:
    """Training side only: does the Nyström out-of-domain residual separate the σiso errors
    that the v2 uncertainty misses? Outer folds of seed 20261202, each outer training side
    split into its 4 grouped inner folds; a model (settings of VENETOS_V2_CHOSEN[0], σiso,
    "power_eiv") trained on 3 inner folds predicts the 4th: error e, v2's u, OOD residual ρ.
    Candidate u² = A u_v2² + g² ρ (A, g ≥ 0 by Gaussian maximum likelihood) fitted on 3 of the
    4 held-out inner folds of an outer fold and scored on the 4th (cross-fitting), against
    u_v2 as is and a constant σ fitted the same way. No outer test fold is predicted.
    Decision rule (written before the first complete run): a v3 protocol with ρ in the law is
    worth writing only if the cross-fitted candidate has ±1u within 61–75 %, ±2u within
    91–99 % and a lower NLL than u_v2 on these pooled inner pairs."""
    from scipy.optimize import minimize as fit
    from scipy.stats import spearmanr
    from accuracy_venetos_si import N_INNER, N_OUTER, Data

    data = Data(VENETOS_V3_SEED)
    config = venetos_config(data.species, 0, v2=True, properties=("ms_iso",))
    config["committee"] = {**COMMITTEE, "calibration": "power_eiv"}
    records = []
    for fold in range(N_OUTER):
        train_rows = data.outer(fold)[2]
        for inner, (train_pos, test_pos) in enumerate(data.inner_splits(train_rows, fold, VENETOS_V3_SEED)):
            train_s = np.unique(data.sel.structure_index[train_rows[train_pos]])
            model = NMRModel.train(data.dataset, config, progress=False, structure_indices=train_s,
                                   structure_groups=data.structure_groups)
            for s in np.unique(data.sel.structure_index[train_rows[test_pos]]):
                prediction = model.predict(data.dataset.structures[s], unknown_species="skip",
                                           outputs=("shielding", "ood"))
                atoms = data.sel.atom_index[data.sites([s])]
                for row, atom in zip(data.sites([s]), atoms):
                    records.append((fold, inner, data.y[row] - prediction.ms_iso[atom], prediction.ms_iso_std[atom],
                                    prediction.ood_residual[atom]))
            print(f"outer {fold} inner {inner}: {len(records)} held-out sites so far", flush=True)
    fold, inner, e, u, rho = (np.array(c) for c in zip(*records))

    def nll(v2, errors):
        return 0.5 * np.log(2 * np.pi * v2) + 0.5 * errors**2 / v2

    laws = {"u_v2": [], "constant": [], "A u_v2^2 + g^2 rho": []}
    scored = {name: np.empty_like(e) for name in laws}
    for f in range(N_OUTER):
        for k in range(N_INNER):
            test = (fold == f) & (inner == k)
            train = (fold == f) & (inner != k)
            e_fit, u_fit, rho_fit = e[train], u[train], rho[train]
            scored["u_v2"][test] = u[test]
            scored["constant"][test] = np.sqrt(np.mean(e_fit**2))
            best = fit(lambda t: float(np.sum(nll(np.exp(t[0]) * u_fit**2 + np.exp(t[1]) * rho_fit, e_fit))),
                       np.array([0.0, np.log(np.mean(e_fit**2) / max(np.mean(rho_fit), 1e-12))]),
                       method="Nelder-Mead")
            A, g2 = np.exp(best.x)
            laws["A u_v2^2 + g^2 rho"].append([f, k, float(A), float(g2)])
            scored["A u_v2^2 + g^2 rho"][test] = np.sqrt(A * u[test] ** 2 + g2 * rho[test])
    summary = {name: {"coverage_1sigma": float(np.mean(np.abs(e) <= v)),
                      "coverage_2sigma": float(np.mean(np.abs(e) <= 2 * v)),
                      "nll": float(np.mean(nll(v**2, e))), "mean_u": float(np.mean(v))} for name, v in scored.items()}
    summary["n_sites"] = int(e.size)
    summary["spearman_abs_error_rho"] = float(spearmanr(np.abs(e), rho)[0])
    summary["spearman_abs_z_rho"] = float(spearmanr(np.abs(e) / u, rho)[0])
    summary["spearman_abs_error_u"] = float(spearmanr(np.abs(e), u)[0])
    summary["fits"] = laws["A u_v2^2 + g^2 rho"]
    summary["loadavg"] = os.getloadavg()
    print(json.dumps(summary, indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration_committee_venetos_v3_explore.json").write_text(json.dumps(
        {"summary": summary, "records": [list(map(float, r)) for r in records]}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", nargs="?", choices=("venetos", "gehlenite"))
    parser.add_argument("--dev", action="store_true", help="training side only (inner split of outer fold 0)")
    parser.add_argument("--plot", action="store_true", help="reliability plot from the outer-fold JSONs")
    parser.add_argument("--cost", action="store_true", help="training CPU time: no committee, scale, power, power_eiv")
    parser.add_argument("--explore-v3", action="store_true",
                        help="training side only: the OOD residual as a second σiso error predictor")
    parser.add_argument("--protocol", choices=("v1", "v2"), default="v1",
                        help="v1: calibration \"power\", the old splits; v2: \"power_eiv\", the new splits")
    args = parser.parse_args()
    if args.cost:
        cost()
    if args.explore_v3:
        explore_v3()
    if args.set:
        run(args.set, args.dev, args.protocol)
    if args.plot:
        plot(args.protocol)


if __name__ == "__main__":
    main()
