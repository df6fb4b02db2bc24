"""Model selection for NMR models: k-fold cross-validation over structures (repeated
shuffles, optional groups such as polymorph families), grid search over dotted config
keys (resumable: a :class:`~ase_mlnmr.training.search_budget.ResultCache` keeps every
finished grid point, a :class:`~ase_mlnmr.training.search_budget.Budget` stops cleanly),
learning curves. The folds come from :mod:`ase_mlnmr.training.validation`; α and feature
scaling inside each training run from :mod:`ase_mlnmr.training.ridge_selection`. Metrics per element and property come from :mod:`ase_mlnmr.training.evaluation`
(σiso MAE/RMSE/%RMSE, ζ, η; EFG component MAE, % of span, CQ, η, Harper metrics).

Folds are made of whole structures: atoms of one cell are never split between training
and test, which would leak near-identical environments.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from .dataset import TensorDataset
from .evaluation import evaluate
from .validation import kfold_splits
from ..nmr_model import NMRModel
from .config import merge_config, validate_config
from .search_budget import Budget, ResultCache, canonical_json, short_hash

__all__ = ["cross_validate_model", "grid_search_model", "learning_curve_model", "config_with"]


def _aggregate(records: list[dict]) -> dict:
    """Mean and std over folds of every (property, element, metric) number."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    keys = {(p, e, m) for r in records for p in r for e in r[p] for m in r[p][e]}
    for prop, element, metric in sorted(keys):
        values = [r[prop][element][metric] for r in records if element in r.get(prop, {}) and metric in r[prop][element]]
        values = np.array(values, dtype=float)
        out.setdefault(prop, {}).setdefault(element, {})[metric] = {
            "mean": float(np.nanmean(values)), "std": float(np.nanstd(values)), "n_folds": int(len(values))}
    return out


def cross_validate_model(
    dataset: TensorDataset,
    config: Mapping[str, Any],
    n_splits: int = 5,
    n_repeats: int = 1,
    seed: int = 0,
    structure_groups: Sequence[Any] | None = None,
    folds: Sequence[int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """k-fold CV over structures; returns ``{"folds": [...], "summary": {prop: {element: {metric: {mean, std}}}}}``.

    ``structure_groups`` keeps structures of one group in one fold; ``folds`` (one fold
    id per structure) fixes the split (then ``n_repeats`` is 1).
    """
    from tqdm import tqdm

    records = []
    repeats = 1 if folds is not None else n_repeats
    splits = []
    for repeat in range(repeats):
        for train, test in kfold_splits(len(dataset), n_splits, groups=structure_groups, folds=folds,
                                        shuffle=True, seed=seed + repeat):
            splits.append((repeat, train, test))
    for repeat, train, test in tqdm(splits, desc="cross-validation", unit="fold", disable=not progress):
        model = NMRModel.train(dataset, config, progress=False, structure_indices=train)
        metrics, _ = evaluate(model, dataset.subset(test))
        records.append(metrics)
    return {"folds": records, "summary": _aggregate(records), "n_splits": n_splits, "n_repeats": repeats}


def config_with(config: Mapping[str, Any], assignments: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``config`` with dotted keys set, e.g. ``{"descriptor.r_cut": 6.0, "efg.alpha": 1e-4}``
    or ``{"species.O.descriptor.r_cut": 6.0}``; the result is checked (an unknown key or value
    raises :class:`~ase_mlnmr.training.config.ConfigError`)."""
    override: dict[str, Any] = {}
    for dotted, value in assignments.items():
        node = override
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    merged = merge_config(config, override)
    validate_config(merged)
    return merged


def _score(summary: Mapping, score: tuple[str, str, str]) -> float:
    prop, element, metric = score
    try:
        return float(summary[prop][element][metric]["mean"])
    except KeyError as error:
        raise ValueError(f"score {score} not among the cross-validation metrics") from error


def grid_search_model(
    dataset: TensorDataset,
    config: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    score: tuple[str, str, str] = ("ms", "Si", "sigma_iso_mae_ppm"),
    progress: bool = False,
    cache: ResultCache | None = None,
    budget: Budget | None = None,
    **cv_options: Any,
) -> dict[str, Any]:
    """Cross-validate every combination of ``grid`` (dotted config keys); lower score wins.

    Every combination's config is checked before the first fit. With ``cache``, finished
    combinations are stored (keyed by config, CV options and data sources) and not
    recomputed; ``budget`` raises :class:`~ase_mlnmr.training.search_budget.BudgetExceeded`
    before a combination once the time is used up — rerun to continue.
    Returns ``{"best": {...assignment}, "best_config": config, "table": [rows]}``.
    """
    from tqdm import tqdm

    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    configs = [config_with(config, assignment) for assignment in combos]
    table = []
    for assignment, candidate in tqdm(list(zip(combos, configs)), desc="grid search", unit="config",
                                      disable=not progress):
        key = canonical_json({"config": candidate, "cv": {k: v for k, v in cv_options.items() if k != "progress"},
                              "sources": list(dataset.sources), "frames": list(dataset.frames)})
        entry = cache.load(f"grid_{short_hash(key)}") if cache is not None else {}
        if entry.get("key") != key:
            if budget is not None:
                budget.check(f"grid point {assignment}")
            summary = cross_validate_model(dataset, candidate, **cv_options)["summary"]
            entry.update(key=key, summary=summary)
            if cache is not None:
                cache.mark(f"grid_{short_hash(key)}")
                cache.flush()
        summary = entry["summary"]
        table.append({"params": assignment, "score": _score(summary, score), "summary": summary})
    best = min(table, key=lambda row: row["score"])
    return {"best": best["params"], "best_config": config_with(config, best["params"]), "table": table,
            "score": list(score)}


def learning_curve_model(
    dataset: TensorDataset,
    config: Mapping[str, Any],
    train_structures: Sequence[int],
    test_structures: Sequence[int],
    sizes: Sequence[int],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Test metrics when training on random subsets (nested, of the given sizes) of the training structures."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(train_structures))
    test = dataset.subset(np.asarray(test_structures))
    rows = []
    for size in sizes:
        if not 0 < size <= len(order):
            raise ValueError(f"learning-curve size {size} outside 1..{len(order)}")
        model = NMRModel.train(dataset, config, progress=False, structure_indices=order[:size])
        metrics, _ = evaluate(model, test)
        rows.append({"n_train_structures": int(size), "metrics": metrics})
    return rows
