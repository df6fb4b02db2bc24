#!/usr/bin/env python
"""Cost of committee uncertainty (docs/uncertainty.md) on the 14 400-atom Na2Si2O5 box.

Run from the repository root (package built in place)::

    PYTHONPATH=. python bench/bench_committee.py

Prediction: the model of ``bench_evaluator.build_model`` (Nyström σiso with 1000 Na /
2000 Si / 4000 O inducing points, EFG λ = 2 models, OOD), once as it is and once with a
K-member committee on every property model (random member weights and calibration 1:
timing does not depend on the values). ``NMRModel.predict`` of the whole box, CPU time
(``time.process_time``), one BLAS thread, best of ``--repeats`` calls, the two models
alternated in one run; σiso (+ OOD) alone and all outputs.

Training: the Si σiso Nyström fit (2000 inducing points, the box's Si power spectra,
synthetic targets) without and with the committee, whose groups are 40 random labels of
the Si atoms (pseudo-structures); the EFG ridge fit of Si (λ-SOAP features, fixed α)
without and with the committee (``fit(..., member_rows=...)``); and the EFG training a
user runs by default, ``alpha: "auto"`` (the α and scaling search on the fold Grams, the
full model, then ``fit_members``; the 40 labels as structures), without and with the
committee. Each pair is timed back to back, ``--training-repeats`` (``--auto-repeats``)
pairs alternated; reported: every pair's ratio and their median. ``--calibration`` (default
"scale"): the committee calibration of the Nyström and fixed-α EFG fits ("power" and
"power_eiv" add the 5 refits of the full model on 80 % of the rows) of the Nyström, fixed-α
and ``alpha: "auto"`` fits.

Output: a Markdown table on stdout, JSON in ``bench/results/bench_committee[_<calibration>].json``.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_evaluator import BOX, RESULTS, build_model, cpu  # noqa: E402


def with_committee(model, size: int, seed: int = 1):
    """A copy of ``model`` whose property models carry ``size`` random members."""
    from ase_mlnmr.nmr_model import NMRModel, PropertyModel

    rng = np.random.default_rng(seed)
    models = []
    for component in model.models.values():
        regressor = copy.copy(component.regressor)
        if component.prop == "ms_iso":
            regressor.member_weights_ = regressor.weights_[None] + rng.normal(size=(size,) + regressor.weights_.shape) \
                * np.abs(regressor.weights_).mean()
        else:
            regressor.member_scaled_weights_ = regressor.scaled_weights_[None] * (1 + 0.1 * rng.normal(
                size=(size, regressor.scaled_weights_.size)))
        regressor.calibration_ = 1.0
        models.append(PropertyModel(component.element, component.prop, component.descriptor, regressor))
    ood = {element: (soap, next(m.regressor for m in models if m.element == element and m.prop == "ms_iso"))
           for element, (soap, _) in model.ood_models.items()}
    return NMRModel(models, ood, ood_reference=model.ood_reference, ood_rank=model.ood_rank)


def prediction_cost(box, plain, committee, repeats: int) -> dict:
    out = {}
    for label, outputs in (("sigma_iso_and_ood", ("shielding", "ood")), ("all_outputs", ("shielding", "efg", "ood"))):
        times = {"plain": [], "committee": []}
        for _ in range(repeats):  # alternate, so that load changes hit both
            for name, model in (("plain", plain), ("committee", committee)):
                times[name].append(cpu(lambda: model.predict(box, outputs=outputs))[0])
        best = {name: min(values) for name, values in times.items()}
        out[label] = {"cpu_s": best, "ratio": best["committee"] / best["plain"]}
    return out


def paired(first, second, repeats: int) -> dict:
    """CPU seconds of ``first`` and ``second`` called alternately ``repeats`` times (load
    changes hit both), the ratio second / first of each pair and their median."""
    times = {"single": [], "committee": []}
    for _ in range(repeats):
        for name, function in (("single", first), ("committee", second)):
            times[name].append(cpu(function)[0])
    ratios = np.array(times["committee"]) / np.array(times["single"])
    return {**times, "ratios": ratios.tolist(), "median_ratio": float(np.median(ratios))}


def auto_alpha_training(features: np.ndarray, targets: np.ndarray, groups: np.ndarray, member_rows=None,
                        calibration: str = "scale"):
    """The equivariant training of ``fit_property_model`` with ``alpha: "auto"`` (default
    selection settings, the groups as structures): α and scaling searched on the fold Grams,
    the full model from their sum, then the committee by ``fit_members`` if ``member_rows``."""
    from ase_mlnmr.training.config import section_settings
    from ase_mlnmr.training.ridge_selection import (FoldGrams, equivariant_folds, fit_equivariant_ridge,
                                                    search_equivariant_ridge)

    selection = section_settings("selection")
    grams = FoldGrams(features, targets, equivariant_folds(groups, selection["n_splits"]))
    chosen = search_equivariant_ridge(grams, selection["auto_feature_scalings"], selection["alpha_grid"],
                                      selection["alpha_search"])
    model = fit_equivariant_ridge(grams, 2, chosen.feature_scaling, chosen.alpha, features, targets)
    if member_rows is not None:
        model.fit_members(features, targets, member_rows, calibration)
    return model


def training_cost(box, size: int, fraction: float, repeats: int, auto_repeats: int,
                  calibration: str = "scale") -> dict:
    from ase_mlnmr.descriptors import LambdaSOAP, SOAP
    from ase_mlnmr.models.committee import CommitteeSettings, committee_design
    from ase_mlnmr.models.linear import EquivariantRidge
    from ase_mlnmr.models.nystrom import NystromKernelRidge

    rng = np.random.default_rng(2)
    X = SOAP(["Na", "Si", "O"]).create(box, centres="Si")
    y = X @ rng.normal(size=X.shape[1]) + rng.normal(size=len(X))
    groups = rng.integers(0, 40, size=len(X))
    rows = committee_design(groups, CommitteeSettings(size=size, fraction=fraction))

    def nystrom(member_rows=None):
        return NystromKernelRidge(n_inducing=2000, length_scale=float(np.sqrt(X.shape[1])), ridge=1e-6).fit(
            X, y, member_rows=member_rows, calibration=calibration)

    F = LambdaSOAP(["Na", "Si", "O"], lam=2).create(box, centres="Si")
    t = np.einsum("nmp,p->nm", F, rng.normal(size=F.shape[2])) + 0.1 * rng.normal(size=F.shape[:2])
    out = {"n_si": int(len(X)), "n_features": int(X.shape[1]), "lambda_features": int(F.shape[2]),
           "nystrom_cpu_s": paired(nystrom, lambda: nystrom(rows), repeats),
           "efg_cpu_s": paired(lambda: EquivariantRidge(alpha=1e-3).fit(F, t),
                               lambda: EquivariantRidge(alpha=1e-3).fit(F, t, member_rows=rows,
                                                                         calibration=calibration), repeats)}
    if auto_repeats:
        out["efg_auto_alpha_cpu_s"] = paired(lambda: auto_alpha_training(F, t, groups),
                                             lambda: auto_alpha_training(F, t, groups, rows, calibration),
                                             auto_repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3, help="prediction calls per model (best kept)")
    parser.add_argument("--training-repeats", type=int, default=5, help="alternated pairs per training (median ratio)")
    parser.add_argument("--auto-repeats", type=int, default=3,
                        help='alternated pairs of the alpha: "auto" training (0: skip it)')
    parser.add_argument("--skip-prediction", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--calibration", default="scale", help='committee calibration of the training fits')
    args = parser.parse_args()
    from ase.io import read

    box = read(BOX)
    load_before = os.getloadavg()
    result = {"size": args.size, "fraction": args.fraction, "calibration": args.calibration, "n_atoms": len(box),
              "prediction": {}}
    if not args.skip_prediction:
        plain = build_model(box)
        result["prediction"] = prediction_cost(box, plain, with_committee(plain, args.size), args.repeats)
    if not args.skip_training:
        result["training"] = training_cost(box, args.size, args.fraction, args.training_repeats,
                                           args.auto_repeats, args.calibration)
    result["loadavg_before_after"] = [load_before, os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.calibration == "scale" else f"_{args.calibration}"
    (RESULTS / f"bench_committee{suffix}.json").write_text(json.dumps(result, indent=2))
    print(f"| K = {args.size} | plain CPU s | committee CPU s | ratio |\n|---|---|---|---|")
    for label, entry in result["prediction"].items():
        print(f"| predict {label} | {entry['cpu_s']['plain']:.2f} | {entry['cpu_s']['committee']:.2f} | "
              f"{entry['ratio']:.3f} |")
    for label, entry in result.get("training", {}).items():
        if label.endswith("_cpu_s"):
            print(f"| train {label[:-6]} (Si), median of {len(entry['ratios'])} pairs | "
                  f"{np.median(entry['single']):.2f} | {np.median(entry['committee']):.2f} | "
                  f"{entry['median_ratio']:.3f} (pairs {' '.join(f'{r:.2f}' for r in entry['ratios'])}) |")
    print(f"load average before/after: {result['loadavg_before_after']}")


if __name__ == "__main__":
    main()
