#!/usr/bin/env python
"""Calibration check of the committee uncertainty on the Venetos 29Si shielding set.

Run from the repository root (package built in place)::

    PYTHONPATH=. python bench/calibration_committee.py

Outer folds only: the 5 grouped outer folds of ``bench/accuracy_venetos_si.py`` (same
seed, same ``venetos_dev_groups.csv`` groups). On each outer training side the model is
trained with the hyper-parameters that document chose for that fold (docs/accuracy_venetos.md,
"Chosen hyper-parameters"; nothing is tuned here) plus ``committee: {size: 8, fraction:
0.5}`` whose groups are the dataset's groups (``structure_groups``); the outer test fold is
predicted with its uncertainty u. Pooled over the folds, per property (σiso; the five σ(2)
spherical components pooled): coverage of |y − ŷ| ≤ u and ≤ 2u (targets 68 ± 7 % and
95 ± 4 %), Gaussian NLL = mean(½ log 2πu² + (y − ŷ)²/2u²) against the NLL of one
constant σ, the RMS of the pooled test errors (the best constant σ, chosen with the
test errors themselves). Writes JSON to ``bench/results/calibration_committee.json`` and
the reliability plot ``docs/figures/committee_reliability.png`` (observed coverage of the
central interval ±k·u against its nominal Gaussian probability).
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import erf  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accuracy_venetos_si import N_OUTER, SEED, Data, our_config  # noqa: E402

from ase_mlnmr.nmr_model import NMRModel  # noqa: E402

#: docs/accuracy_venetos.md, "Chosen hyper-parameters" (per outer fold): ζ, n_inducing, ridge; σ(2) α = 1000.
CHOSEN = {0: (1, 150, 0.01), 1: (3, 2000, 0.03), 2: (1, 300, 0.01), 3: (1, 300, 0.01), 4: (1, 150, 0.003)}
DESCRIPTOR = {"r_cut": 4.5, "n_max": 4, "l_max": 8, "sigma": 0.4, "mixing_channels": 8}
COMMITTEE = {"size": 8, "fraction": 0.5, "seed": 0}
FIGURE = HERE.parent / "docs" / "figures" / "committee_reliability.png"


def scores(errors: np.ndarray, u: np.ndarray) -> dict:
    z = np.abs(errors) / u
    constant = float(np.sqrt(np.mean(errors**2)))
    nll = float(np.mean(0.5 * np.log(2 * np.pi * u**2) + 0.5 * z**2))
    nll_constant = float(np.mean(0.5 * np.log(2 * np.pi * constant**2) + 0.5 * (errors / constant) ** 2))
    return {"n": int(errors.size), "coverage_1sigma": float(np.mean(z <= 1)), "coverage_2sigma": float(np.mean(z <= 2)),
            "nll": nll, "nll_constant_sigma": nll_constant, "constant_sigma": constant,
            "mean_u": float(np.mean(u)), "mae": float(np.mean(np.abs(errors)))}


def main() -> None:
    data = Data(SEED)
    errors = {"ms_iso": [], "ms_aniso": []}
    spreads = {"ms_iso": [], "ms_aniso": []}
    folds = []
    for fold in range(N_OUTER):
        zeta, n_inducing, ridge = CHOSEN[fold]
        config = our_config(data.species, DESCRIPTOR, {"kernel": "dot_product", "zeta": zeta,
                                                       "n_inducing": n_inducing, "ridge": ridge}, 1000.0)
        config["committee"] = dict(COMMITTEE)
        train_s, test_s, _, test_rows = data.outer(fold)
        start = time.process_time()
        model = NMRModel.train(data.dataset, config, progress=False, structure_indices=train_s,
                               structure_groups=data.structure_groups)
        train_cpu = time.process_time() - start
        alpha = {p: model.models[("Si", p)].regressor.calibration_ for p in ("ms_iso", "ms_aniso")}
        fold_errors = {"ms_iso": []}
        for s in test_s:
            atoms = data.dataset.structures[s]
            prediction = model.predict(atoms, unknown_species="skip", outputs=("shielding",))
            for row in data.sites([s]):
                i = int(data.sel.atom_index[row])
                e_iso = data.y[row] - prediction.ms_iso[i]
                e_l2 = data.l2[row] - prediction.ms_aniso[i]
                errors["ms_iso"].append([e_iso])
                spreads["ms_iso"].append([prediction.ms_iso_std[i]])
                errors["ms_aniso"].append(e_l2)
                spreads["ms_aniso"].append(prediction.ms_aniso_std[i])
                fold_errors["ms_iso"].append(abs(e_iso))
        folds.append({"fold": fold, "train_cpu_s": train_cpu, "calibration_factor": alpha,
                      "test_sites": int(len(test_rows)), "ms_iso_mae": float(np.mean(fold_errors["ms_iso"]))})
        print(f"fold {fold}: α = {alpha}, σiso MAE {folds[-1]['ms_iso_mae']:.3f} ppm, train {train_cpu:.0f} s CPU",
              flush=True)
    result = {"committee": COMMITTEE, "folds": folds, "pooled": {}}
    for prop in errors:
        e, u = np.concatenate(errors[prop]), np.concatenate(spreads[prop])
        result["pooled"][prop] = scores(e, u)
        print(prop, json.dumps(result["pooled"][prop]), flush=True)
    result["loadavg"] = os.getloadavg()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "calibration_committee.json").write_text(json.dumps(result, indent=2))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.linspace(0.05, 3.0, 60)
    nominal = erf(k / np.sqrt(2))
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for prop, label in (("ms_iso", "σiso"), ("ms_aniso", "σ(2) components")):
        z = np.abs(np.concatenate(errors[prop])) / np.concatenate(spreads[prop])
        ax.plot(nominal, [np.mean(z <= kk) for kk in k], label=f"29Si {label}")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="ideal")
    ax.set_xlabel("nominal coverage of ±k·u (Gaussian)")
    ax.set_ylabel("observed coverage, outer test folds")
    ax.set_title("Venetos, committee K = 8, f = 0.5", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=120)
    print(f"plot: {FIGURE}")


if __name__ == "__main__":
    main()
