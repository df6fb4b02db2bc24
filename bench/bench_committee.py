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
without and with the committee (``fit(..., member_rows=...)``). Ratios of CPU times
measured side by side.

Output: a Markdown table on stdout, JSON in ``bench/results/bench_committee.json``.
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


def training_cost(box, size: int, fraction: float) -> dict:
    from ase_mlnmr.descriptors import LambdaSOAP, SOAP
    from ase_mlnmr.models.committee import CommitteeSettings, committee_design
    from ase_mlnmr.models.linear import EquivariantRidge
    from ase_mlnmr.models.nystrom import NystromKernelRidge

    rng = np.random.default_rng(2)
    X = SOAP(["Na", "Si", "O"]).create(box, centres="Si")
    y = X @ rng.normal(size=X.shape[1]) + rng.normal(size=len(X))
    groups = rng.integers(0, 40, size=len(X))
    rows = committee_design(groups, CommitteeSettings(size=size, fraction=fraction))
    single = cpu(lambda: NystromKernelRidge(n_inducing=2000, length_scale=float(np.sqrt(X.shape[1])), ridge=1e-6)
                 .fit(X, y))[0]
    committee = cpu(lambda: NystromKernelRidge(n_inducing=2000, length_scale=float(np.sqrt(X.shape[1])), ridge=1e-6)
                    .fit(X, y, member_rows=rows))[0]
    F = LambdaSOAP(["Na", "Si", "O"], lam=2).create(box, centres="Si")
    t = np.einsum("nmp,p->nm", F, rng.normal(size=F.shape[2])) + 0.1 * rng.normal(size=F.shape[:2])
    efg_single = cpu(lambda: EquivariantRidge(alpha=1e-3).fit(F, t))[0]
    efg_committee = cpu(lambda: EquivariantRidge(alpha=1e-3).fit(F, t, member_rows=rows))[0]
    return {"n_si": int(len(X)), "n_features": int(X.shape[1]), "lambda_features": int(F.shape[2]),
            "nystrom_cpu_s": {"single": single, "committee": committee, "ratio": committee / single},
            "efg_cpu_s": {"single": efg_single, "committee": efg_committee, "ratio": efg_committee / efg_single}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    from ase.io import read

    box = read(BOX)
    plain = build_model(box)
    committee = with_committee(plain, args.size)
    load_before = os.getloadavg()
    result = {"size": args.size, "fraction": args.fraction, "n_atoms": len(box),
              "prediction": prediction_cost(box, plain, committee, args.repeats)}
    if not args.skip_training:
        result["training"] = training_cost(box, args.size, args.fraction)
    result["loadavg_before_after"] = [load_before, os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_committee.json").write_text(json.dumps(result, indent=2))
    print(f"| K = {args.size} | plain CPU s | committee CPU s | ratio |\n|---|---|---|---|")
    for label, entry in result["prediction"].items():
        print(f"| predict {label} | {entry['cpu_s']['plain']:.2f} | {entry['cpu_s']['committee']:.2f} | "
              f"{entry['ratio']:.3f} |")
    for label in ("nystrom_cpu_s", "efg_cpu_s"):
        if "training" in result:
            entry = result["training"][label]
            print(f"| train {label[:-6]} (Si) | {entry['single']:.2f} | {entry['committee']:.2f} | "
                  f"{entry['ratio']:.3f} |")
    print(f"load average before/after: {result['loadavg_before_after']}")


if __name__ == "__main__":
    main()
