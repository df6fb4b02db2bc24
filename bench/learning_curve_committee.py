#!/usr/bin/env python
"""Learning curves with the committee: test error and mean predicted uncertainty against
training size, on the Venetos 29Si σiso and gehlenite EFG sets.

Run from the repository root (package built in place)::

    PYTHONPATH=. python bench/learning_curve_committee.py venetos
    PYTHONPATH=. python bench/learning_curve_committee.py gehlenite
    PYTHONPATH=. python bench/learning_curve_committee.py --plot

Outer fold 0 of each set, its hyper-parameters held fixed. Venetos: outer fold 0 of the
model-selection protocol (docs/protocols/venetos_model_selection.md, seed 20261130) with
the settings its run chose for that fold (σiso only), ``committee: {size: 8, fraction: 0.5,
calibration: "power_eiv"}`` (protocol v2's calibration). Gehlenite: outer fold 0 of protocol
v2's cell folds (``fold_assignment(24, 5, seed=20261201)``) and the fixed configuration of
docs/protocols/committee_calibration_v2.md, α "auto" re-chosen on every subset by the
package's inner search, calibration ``"power_eiv"`` (until 2026-12-01: v1's cell folds and
``"power"``). Training subsets: nested random subsets of the
training groups (seed 0; Venetos groups, gehlenite cells); every subset is scored on the
whole outer test fold 0: MAE of the prediction and mean calibrated uncertainty u (σiso in
ppm; EFG: the 5 spherical components pooled, a.u.), plus the ±1u coverage. Nothing is
tuned on these numbers. JSON in ``bench/results/learning_curve_committee_<set>.json``;
``--plot`` draws ``docs/figures/committee_learning_curves.png``.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from calibration_committee import (COMMITTEE, GEHLENITE_SPECIES, RESULTS, VENETOS_V2_SEED,  # noqa: E402
                                   gehlenite_setup, gehlenite_test_errors, venetos_config)
from ase_mlnmr.nmr_model import NMRModel  # noqa: E402

VENETOS_FRACTIONS = (0.2, 0.4, 0.7, 1.0)
VENETOS_COMMITTEE = GEHLENITE_COMMITTEE = {**COMMITTEE, "calibration": "power_eiv"}
GEHLENITE_CELLS = (5, 10, 19)
FIGURE = HERE.parent / "docs" / "figures" / "committee_learning_curves.png"


def nested_groups(groups: np.ndarray, sizes, seed: int = 0) -> list[np.ndarray]:
    """The first n of one random order of the unique groups, for every n in ``sizes``."""
    order = np.random.default_rng(seed).permutation(np.unique(groups))
    return [order[:n] for n in sizes]


def point(errors: np.ndarray, u: np.ndarray, n_train: int, cpu: float) -> dict:
    return {"n_train_sites": n_train, "mae": float(np.mean(np.abs(errors))), "mean_u": float(np.mean(u)),
            "coverage_1sigma": float(np.mean(np.abs(errors) <= u)), "train_cpu_s": cpu}


def save(name: str, curve: dict, committee: dict) -> None:
    """Write the curve so far (after every point: an interrupted run keeps what it measured)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"learning_curve_committee_{name}.json").write_text(json.dumps(
        {"set": name, "committee": committee, "curve": curve, "loadavg": os.getloadavg()}, indent=1))


def venetos() -> dict:
    from accuracy_venetos_si import Data

    data = Data(VENETOS_V2_SEED)
    config = venetos_config(data.species, 0, v2=True, properties=("ms_iso",))
    config["committee"] = dict(VENETOS_COMMITTEE)
    train_s, test_s, _, test_rows = data.outer(0)
    groups = data.structure_groups[train_s]
    n_groups = np.unique(groups).size
    curve = {"Si ms_iso": []}
    for chosen in nested_groups(groups, [int(round(f * n_groups)) for f in VENETOS_FRACTIONS]):
        structures = train_s[np.isin(groups, chosen)]
        start = time.process_time()
        model = NMRModel.train(data.dataset, config, progress=False, structure_indices=structures,
                               structure_groups=data.structure_groups)
        cpu = time.process_time() - start
        errors, spreads = [], []
        for s in test_s:
            prediction = model.predict(data.dataset.structures[s], unknown_species="skip", outputs=("shielding",))
            rows = data.sites([s])
            errors.append(data.y[rows] - prediction.ms_iso[data.sel.atom_index[rows]])
            spreads.append(prediction.ms_iso_std[data.sel.atom_index[rows]])
        curve["Si ms_iso"].append(point(np.concatenate(errors), np.concatenate(spreads),
                                        int(data.sites(structures).size), cpu))
        print(json.dumps(curve["Si ms_iso"][-1]), flush=True)
        save("venetos", curve, VENETOS_COMMITTEE)
    return curve


def gehlenite() -> dict:
    dataset, fold_of_cell, config = gehlenite_setup(True, GEHLENITE_COMMITTEE)
    train, test = np.flatnonzero(fold_of_cell != 0), np.flatnonzero(fold_of_cell == 0)
    curve: dict = {f"{el} efg": [] for el in GEHLENITE_SPECIES}
    for cells in nested_groups(train, GEHLENITE_CELLS):
        start = time.process_time()
        model = NMRModel.train(dataset, config, progress=False, structure_indices=np.sort(cells))
        cpu = time.process_time() - start
        collected = gehlenite_test_errors(model, dataset, test)
        for el, (errors, spreads) in collected.items():
            n_train = int(sum(np.sum(dataset.masks["efg"][c] & (np.array(dataset.structures[c].get_chemical_symbols())
                                                                 == el)) for c in cells))
            curve[f"{el} efg"].append(point(np.concatenate(errors), np.concatenate(spreads), n_train, cpu))
            print(el, json.dumps(curve[f"{el} efg"][-1]), flush=True)
        save("gehlenite", curve, config["committee"])
    return curve


def plot() -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for name, unit in (("venetos", "ppm"), ("gehlenite", "a.u.")):
        path = RESULTS / f"learning_curve_committee_{name}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            panels.append((name + (" (partial run)" if "note" in saved else ""), unit, saved["curve"],
                           saved["committee"]["calibration"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    for ax, (name, unit, curve, calibration) in zip(axes[0], panels):
        ax.tick_params(axis="x", which="minor", labelsize=6)
        for index, (key, points) in enumerate(curve.items()):
            n = [p["n_train_sites"] for p in points]
            colour = f"C{index}"
            ax.loglog(n, [p["mae"] for p in points], "o-", color=colour, label=f"{key}: MAE")
            ax.loglog(n, [p["mean_u"] for p in points], "s--", color=colour, label=f"{key}: mean u")
        ax.set_xlabel("training sites (of that element)")
        ax.set_ylabel(f"test error / predicted uncertainty ({unit})")
        ax.set_title(f"{name}, outer fold 0, committee K = 8 (\"{calibration}\")", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=120)
    print(f"plot: {FIGURE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", nargs="?", choices=("venetos", "gehlenite"))
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    if args.set:
        venetos() if args.set == "venetos" else gehlenite()
    if args.plot:
        plot()


if __name__ == "__main__":
    main()
