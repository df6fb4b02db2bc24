#!/usr/bin/env python
"""Separation test of a cheaper OOD prefix rule (protocol: docs/protocols/ood_prefix_rule.md).

Does the Nyström residual over the leading p pivots separate held-out from perturbed
(out-of-domain) atoms as well as the residual over all Nx pivots? Run once, from the
repository root with the package built in place::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/ood_prefix_check.py

JSON in ``bench/results/ood_prefix_check.json``; pass = AUROC(candidate) ≥ AUROC(full) − 0.01
in every (element, perturbation) case. The one run (2026-11-30) passed, and the candidate
is now ``nmr_model.default_ood_rank``; "current" is the rule it replaced.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: (element, Nx) of the protocol
CASES = (("O", 2000), ("Si", 1000))
#: (cell scale, rattle Å), in the protocol's order
PERTURBATIONS = ((1.04, 0.04), (0.96, 0.04), (1.0, 0.08))
SEED = 20261201
TOLERANCE = 0.01


def previous_rank(n_inducing: int, n_features: int) -> int:
    """The rule before the protocol's run, ⌊√(0.25 · Nx · D)⌋, clipped to [1, Nx]."""
    return int(max(1, min(n_inducing, math.isqrt(n_inducing * n_features // 4))))


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score_out > score_in) (+ half the ties): the Mann–Whitney statistic."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([inside, outside]))
    n_in, n_out = len(inside), len(outside)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def prefix_auroc(box, element: str, n_inducing: int, axis: int, perturbations: Sequence[tuple[float, float]],
                 seed: int, ranks: Callable[[int, int], dict]) -> dict:
    """AUROC of the residual over the full basis and over ``ranks(Nx, D)`` prefixes.

    The ``element`` atoms with fractional coordinate ``axis`` < 0.5 train a Nyström basis of
    ``n_inducing`` pivots (pivoted Cholesky, Gaussian kernel, standardised features, length
    scale = median distance of every 8th standardised training vector); in domain: the
    others; out of domain: the same atoms after each (cell scale, rattle Å) perturbation,
    one seeded generator for all."""
    from ase_mlnmr.descriptors import SOAP
    from ase_mlnmr.models.nystrom import NystromKernelRidge

    soap = SOAP(["Na", "Si", "O"])
    atoms_of = np.flatnonzero(box.symbols == element)
    train = box.get_scaled_positions()[atoms_of, axis] < 0.5
    X = soap.create(box, centres=atoms_of[train])
    model = NystromKernelRidge(n_inducing=n_inducing, length_scale=1.0, tol=1e-12)
    model.x_mean_, model.x_scale_ = X.mean(axis=0), np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    sample = ((X - model.x_mean_) / model.x_scale_)[::8]
    model.length_scale = float(np.median(np.linalg.norm(sample[:, None] - sample[None], axis=-1)))
    model.fit(X, np.zeros(len(X)))
    m = model.n_inducing_
    prefixes = {"full": m, **ranks(m, X.shape[1])}
    inside = soap.create(box, centres=atoms_of[~train])
    result = {"element": element, "n_train": int(train.sum()), "n_in_domain": int((~train).sum()),
              "n_inducing": m, "n_features": int(X.shape[1]), "ranks": prefixes, "auroc": {}}
    rng = np.random.default_rng(seed)
    for scale, rattle in perturbations:
        moved = box.copy()
        moved.set_cell(box.cell * scale, scale_atoms=True)
        moved.positions += rng.normal(scale=rattle, size=moved.positions.shape)
        outside = soap.create(moved, centres=atoms_of[~train])
        result["auroc"][f"cell x{scale:g}, rattle {rattle} A"] = {
            name: auroc(model.out_of_domain(inside, rank=p), model.out_of_domain(outside, rank=p))
            for name, p in prefixes.items()}
    return result


def main() -> None:
    from ase.io import read

    from ase_mlnmr.nmr_model import default_ood_rank
    from shared_data import shared_dir

    box = read(shared_dir() / "reference" / "bench_box_na2si2o5_14400.extxyz")
    c0, w0, start = time.process_time(), time.perf_counter(), os.popen("uptime").read().strip()
    cases = [prefix_auroc(box, element, n, axis=1, perturbations=PERTURBATIONS, seed=SEED,
                          ranks=lambda m, d: {"candidate": default_ood_rank(m, d), "current": previous_rank(m, d)})
             for element, n in CASES]
    passes = [values["candidate"] >= values["full"] - TOLERANCE for case in cases for values in case["auroc"].values()]
    result = {"cases": cases, "passes": bool(all(passes)), "cpu_s": time.process_time() - c0,
              "wall_s": time.perf_counter() - w0, "uptime_start": start, "uptime_end": os.popen("uptime").read().strip()}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "ood_prefix_check.json").write_text(json.dumps(result, indent=2))
    for case in cases:
        for name, values in case["auroc"].items():
            print(case["element"], name, " ".join(f"{k}={v:.4f}" for k, v in values.items()))
    print("ranks", {case["element"]: case["ranks"] for case in cases})
    print("PASS" if result["passes"] else "FAIL", f"(cpu {result['cpu_s']:.0f} s)")


if __name__ == "__main__":
    main()
