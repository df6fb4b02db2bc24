"""Model selection, the one cross-validation layer of the training side: folds, metrics,
cross-validation, grid search, nested CV and learning curves — for any regression model
given as a function, and for whole NMR models over structures — plus the greedy staged
search, α walk and one-standard-error choice of the benchmarks. Searches are resumable: a
:class:`~ase_mlnmr.training.search_budget.ResultCache` keeps every finished result, a
:class:`~ase_mlnmr.training.search_budget.Budget` stops cleanly. The ridge α and feature
scaling inside each training run come from :mod:`ase_mlnmr.training.ridge_selection`
(which takes its folds from :func:`fold_assignment` here); the nested inner-CV scorer of
equivariant ridges over fixed outer folds, which drives :func:`staged_search` and
:func:`grid_walk` for the benchmarks, is :mod:`ase_mlnmr.training.nested_ridge`.

Any model: a user-supplied ``fit_predict(train_idx, test_idx, **params)`` trains on the
samples ``train_idx`` and returns predictions for ``test_idx`` with the shape of
``y[test_idx]``; targets may be scalars (n,), several scalars (n, T) or tensors (n, ...).
Errors are scored by ``metric(y_true, y_pred) -> {property: {metric_name: value}}``.

NMR models (:func:`cross_validate_model`, :func:`grid_search_model`,
:func:`learning_curve_model`): folds are made of whole structures (atoms of one cell are
never split between training and test, which would leak near-identical environments);
metrics per element and property come from :mod:`ase_mlnmr.training.evaluation` (σiso
MAE/RMSE/%RMSE, ζ, η; EFG component MAE, % of span, CQ, η, Harper metrics).

Metric definitions (per property, on a set of n reference values y and predictions f):

* MAE = mean |f - y|, RMSE = sqrt(mean (f - y)^2) (units of the target);
* %RMSE = 100 * RMSE / std(y), std the population (ddof = 0) standard deviation of the
  reference values of the same set (so 100 % = predicting the set mean);
* :func:`tensor_metrics` uses Euclidean/Frobenius norms per sample instead:
  MAE = mean |e_i|, RMSE = sqrt(mean |e_i|^2), %RMSE = 100 RMSE / sqrt(mean |y_i - ybar|^2).

Folds (Charpentier 2025: k = 5, repeated after reshuffling): shuffled k-fold; with
``groups`` whole groups go to one fold (groups taken in random order, each to the fold
with the fewest samples so far); or an explicit fold id per sample. Repeat r uses seed
``seed + r``. Aggregates (:func:`fold_statistics`) are the mean and sample standard
deviation (ddof = 1; 0 for one fold) over all folds of all repeats, NaN folds left out,
plus "pooled" metrics on the out-of-fold predictions of each repeat.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from ..nmr_model import NMRModel
from .config import DEFAULT_CONFIG, merge_config, validate_config
from .dataset import TensorDataset
from .evaluation import evaluate
from .search_budget import Budget, ResultCache, canonical_json, short_hash

#: Folds of every cross-validation here unless told otherwise: the training config's
#: ``selection.n_splits`` (one home of the default).
DEFAULT_N_SPLITS: int = DEFAULT_CONFIG["selection"]["n_splits"]

__all__ = [
    "fold_assignment",
    "kfold_splits",
    "regression_metrics",
    "tensor_metrics",
    "fold_statistics",
    "CVResult",
    "cross_validate",
    "parameter_grid",
    "GridSearchResult",
    "grid_search",
    "nested_cross_validate",
    "LearningCurveResult",
    "learning_curve",
    "cross_validate_model",
    "config_with",
    "grid_search_model",
    "learning_curve_model",
    "grid_walk",
    "staged_search",
    "OneStandardErrorChoice",
    "one_standard_error_choice",
]

Split = tuple[np.ndarray, np.ndarray]
Metrics = dict[str, dict[str, float]]
FitPredict = Callable[..., np.ndarray]
MetricFn = Callable[[np.ndarray, np.ndarray], Mapping[str, Any]]


# --------------------------------------------------------------------------- folds
def fold_assignment(
    n_samples: int,
    n_splits: int = DEFAULT_N_SPLITS,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    shuffle: bool = True,
    seed: int | None = None,
) -> np.ndarray:
    """Fold id (0..n_splits-1) for every sample.

    Without groups: a random permutation cut into n_splits contiguous parts whose sizes
    differ by at most one. With groups: groups in random order (order of first
    appearance if not shuffled, then largest first), each assigned whole to the fold
    holding the fewest samples so far (lowest fold id on ties).
    """
    n_samples = int(n_samples)
    if n_splits < 2:
        raise ValueError("n_splits must be >= 2")
    rng = np.random.default_rng(seed)
    folds = np.empty(n_samples, dtype=np.int64)
    if groups is None:
        if n_splits > n_samples:
            raise ValueError(f"cannot make {n_splits} folds from {n_samples} samples")
        order = rng.permutation(n_samples) if shuffle else np.arange(n_samples)
        folds[order] = (np.arange(n_samples) * n_splits) // n_samples
        return folds
    labels = np.asarray(groups)
    if labels.shape != (n_samples,):
        raise ValueError(f"groups must have one label per sample ({n_samples}), got shape {labels.shape}")
    uniq, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    if n_splits > uniq.size:
        raise ValueError(f"cannot make {n_splits} folds from {uniq.size} groups")
    if shuffle:
        order = rng.permutation(uniq.size)
    else:
        order = np.argsort(first, kind="stable")
        order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(n_splits, dtype=np.int64)
    group_fold = np.empty(uniq.size, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        group_fold[g] = f
        load[f] += counts[g]
    return group_fold[inverse.reshape(-1)]


def kfold_splits(
    n_samples: int,
    n_splits: int = DEFAULT_N_SPLITS,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    folds: Sequence[int] | np.ndarray | None = None,
    shuffle: bool = True,
    seed: int | None = None,
) -> list[Split]:
    """List of (train_idx, test_idx), one per fold (see :func:`fold_assignment`).

    ``folds`` (one fold id per sample) overrides ``n_splits``/``groups``/``shuffle``.
    """
    if folds is not None:
        fold_ids = np.asarray(folds)
        if fold_ids.shape != (int(n_samples),):
            raise ValueError(f"folds must have one entry per sample ({n_samples}), got {fold_ids.shape}")
        if groups is not None:
            g = np.asarray(groups)
            for label in np.unique(g):
                if np.unique(fold_ids[g == label]).size > 1:
                    raise ValueError(f"explicit folds split group {label!r} over several folds")
    else:
        fold_ids = fold_assignment(n_samples, n_splits, groups=groups, shuffle=shuffle, seed=seed)
    ids = np.unique(fold_ids)
    if ids.size < 2:
        raise ValueError("need at least two folds")
    every = np.arange(int(n_samples))
    return [(every[fold_ids != f], every[fold_ids == f]) for f in ids]


# ------------------------------------------------------------------------- metrics
def _as_2d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return y.reshape(y.shape[0], -1) if y.ndim > 1 else y[:, None]


def _property_names(y: np.ndarray, names: Sequence[str] | None) -> list[str]:
    n_props = _as_2d(y).shape[1]
    if names is not None:
        if len(names) != n_props:
            raise ValueError(f"{len(names)} names for {n_props} properties")
        return list(names)
    if np.asarray(y).ndim == 1:
        return ["y"]
    shape = np.asarray(y).shape[1:]
    return ["y[" + ",".join(map(str, idx)) + "]" for idx in np.ndindex(*shape)]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str] | None = None) -> Metrics:
    """Per property (column / trailing index): MAE, RMSE, %RMSE = 100 RMSE / std(y_true), n."""
    yt, yp = _as_2d(y_true), _as_2d(y_pred)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true {np.shape(y_true)} and y_pred {np.shape(y_pred)} differ in shape")
    err = yp - yt
    mae = np.mean(np.abs(err), axis=0)
    rmse = np.sqrt(np.mean(err**2, axis=0))
    std = np.std(yt, axis=0)
    out: Metrics = {}
    for k, name in enumerate(_property_names(y_true, names)):
        out[name] = {
            "MAE": float(mae[k]),
            "RMSE": float(rmse[k]),
            "%RMSE": float(100.0 * rmse[k] / std[k]) if std[k] > 0 else math.nan,
            "n": float(yt.shape[0]),
        }
    return out


def tensor_metrics(y_true: np.ndarray, y_pred: np.ndarray, name: str = "tensor") -> Metrics:
    """Norm-based errors for tensors (n, ...): MAE = mean |e_i|, RMSE = sqrt(mean |e_i|^2),
    %RMSE = 100 RMSE / sqrt(mean |y_i - ybar|^2) (|.| Euclidean / Frobenius norm)."""
    yt, yp = _as_2d(y_true), _as_2d(y_pred)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true {np.shape(y_true)} and y_pred {np.shape(y_pred)} differ in shape")
    err = np.linalg.norm(yp - yt, axis=1)
    rmse = float(np.sqrt(np.mean(err**2)))
    spread = float(np.sqrt(np.mean(np.sum((yt - yt.mean(axis=0)) ** 2, axis=1))))
    return {
        name: {
            "MAE": float(np.mean(err)),
            "RMSE": rmse,
            "%RMSE": 100.0 * rmse / spread if spread > 0 else math.nan,
            "n": float(yt.shape[0]),
        }
    }


def _normalise_metrics(raw: Mapping[str, Any]) -> Metrics:
    if all(isinstance(v, Mapping) for v in raw.values()):
        return {str(p): {str(k): float(v) for k, v in d.items()} for p, d in raw.items()}
    return {"y": {str(k): float(v) for k, v in raw.items()}}


def fold_statistics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per number of the nested metric dicts ``records`` (one per fold): ``{"mean", "std",
    "n_folds", "values"}`` over the folds that hold it; NaN values are left out of mean and
    std (sample std, ddof = 1; 0 with fewer than two values)."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    if keys and all(isinstance(r[k], Mapping) for r in records for k in r):
        return {k: fold_statistics([r[k] for r in records if k in r]) for k in keys}
    out: dict[str, Any] = {}
    for key in keys:
        values = np.array([r[key] for r in records if key in r], dtype=float)
        kept = values[~np.isnan(values)]
        out[key] = {"mean": float(np.mean(kept)) if kept.size else math.nan,
                    "std": float(np.std(kept, ddof=1)) if kept.size > 1 else 0.0,
                    "n_folds": int(values.size), "values": values.tolist()}
    return out


def _leaves(statistics: Mapping[str, Any], which: str) -> dict[str, Any]:
    """One field (e.g. "mean") of every leaf of :func:`fold_statistics`."""
    return {k: v[which] if "n_folds" in v else _leaves(v, which) for k, v in statistics.items()}


def _aggregate(records: Sequence[Metrics]) -> tuple[Metrics, Metrics]:
    statistics = fold_statistics(records)
    return _leaves(statistics, "mean"), _leaves(statistics, "std")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# -------------------------------------------------------------------- cross-validation
@dataclass
class CVResult:
    """Cross-validation outcome.

    ``folds``: one record per fold and repeat (repeat, fold, n_train, n_test, metrics,
    and ``params`` chosen in nested CV); ``mean``/``std`` over those folds;
    ``pooled``: metrics of all out-of-fold predictions, one per repeat;
    ``predictions``: out-of-fold predictions, shape (n_repeats,) + y.shape.
    """

    folds: list[dict[str, Any]]
    mean: Metrics
    std: Metrics
    pooled: list[Metrics]
    predictions: np.ndarray | None
    params: dict[str, Any] = field(default_factory=dict)

    def score(self, metric: str = "RMSE", prop: str | None = None) -> float:
        """Mean over folds of ``metric`` for ``prop`` (or averaged over properties)."""
        props = [prop] if prop is not None else list(self.mean)
        return float(np.mean([self.mean[p][metric] for p in props]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no predictions; NaN -> None) for model-file metadata."""
        return _jsonable(
            {
                "params": self.params,
                "n_folds": len(self.folds),
                "mean": self.mean,
                "std": self.std,
                "pooled": self.pooled,
                "folds": self.folds,
            }
        )


def _repeat_seeds(n_repeats: int, seed: int | Sequence[int] | None) -> list[int | None]:
    if seed is None or isinstance(seed, (int, np.integer)):
        base = 0 if seed is None else int(seed)
        return [base + r for r in range(n_repeats)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n_repeats:
        raise ValueError(f"{len(seeds)} seeds for {n_repeats} repeats")
    return seeds


def _split_sets(
    n: int,
    n_splits: int,
    n_repeats: int,
    seed: int | Sequence[int] | None,
    groups: Any,
    folds: Any,
    shuffle: bool,
) -> list[list[Split]]:
    if folds is not None:
        if n_repeats != 1:
            raise ValueError("explicit folds give one partition: use n_repeats=1")
        return [kfold_splits(n, groups=groups, folds=folds)]
    if not shuffle and n_repeats != 1:
        raise ValueError("unshuffled folds are identical in every repeat: use n_repeats=1")
    return [
        kfold_splits(n, n_splits, groups=groups, shuffle=shuffle, seed=s) for s in _repeat_seeds(n_repeats, seed)
    ]


def _predict_fold(fit_predict: FitPredict, train: np.ndarray, test: np.ndarray, y: np.ndarray, params: Mapping) -> np.ndarray:
    pred = np.asarray(fit_predict(train, test, **params), dtype=float)
    expected = (test.size,) + y.shape[1:]
    if pred.shape != expected:
        if pred.size == test.size * int(np.prod(y.shape[1:], dtype=int)):
            pred = pred.reshape(expected)
        else:
            raise ValueError(f"fit_predict returned shape {pred.shape}, expected {expected}")
    return pred


def cross_validate(
    fit_predict: FitPredict,
    y: np.ndarray,
    *,
    n_splits: int = DEFAULT_N_SPLITS,
    n_repeats: int = 1,
    seed: int | Sequence[int] | None = 0,
    groups: Sequence[Any] | np.ndarray | None = None,
    folds: Sequence[int] | np.ndarray | None = None,
    shuffle: bool = True,
    metric: MetricFn = regression_metrics,
    params: Mapping[str, Any] | None = None,
    store_predictions: bool = True,
) -> CVResult:
    """Repeated k-fold CV of ``fit_predict(train_idx, test_idx, **params)`` on targets ``y``.

    Repeat r uses seed ``seed + r`` (or ``seed[r]`` for a list). Every sample is tested
    exactly once per repeat.
    """
    y = np.asarray(y)
    params = dict(params or {})
    n = y.shape[0]
    records: list[dict[str, Any]] = []
    pooled: list[Metrics] = []
    split_sets = _split_sets(n, n_splits, n_repeats, seed, groups, folds, shuffle)
    preds = np.full((len(split_sets),) + y.shape, np.nan)
    for r, splits in enumerate(split_sets):
        for f, (train, test) in enumerate(splits):
            pred = _predict_fold(fit_predict, train, test, y, params)
            preds[r, test] = pred
            records.append(
                {
                    "repeat": r,
                    "fold": f,
                    "n_train": int(train.size),
                    "n_test": int(test.size),
                    "metrics": _normalise_metrics(metric(y[test], pred)),
                }
            )
        pooled.append(_normalise_metrics(metric(y, preds[r])))
    mean, std = _aggregate([rec["metrics"] for rec in records])
    return CVResult(records, mean, std, pooled, preds if store_predictions else None, params)


# ------------------------------------------------------------------------ grid search
@dataclass
class GridSearchResult:
    """All grid points with their CV result and score (lower is better)."""

    results: list[tuple[dict[str, Any], CVResult, float]]
    best_params: dict[str, Any]
    best_score: float
    best_result: CVResult

    def table(self) -> list[dict[str, Any]]:
        """One row per grid point: parameters and score."""
        return [{**p, "score": s} for p, _, s in self.results]


def parameter_grid(param_grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the value lists of ``param_grid`` (last key fastest)."""
    keys = list(param_grid)
    for k in keys:
        if isinstance(param_grid[k], (str, bytes)) or not isinstance(param_grid[k], Sequence | np.ndarray):
            raise ValueError(f"param_grid[{k!r}] must be a list of values")
        if len(param_grid[k]) == 0:
            raise ValueError(f"param_grid[{k!r}] is empty")
    return [dict(zip(keys, values)) for values in itertools.product(*(param_grid[k] for k in keys))]


def _scorer(score: str | Callable[[CVResult], float], prop: str | None) -> Callable[[CVResult], float]:
    if callable(score):
        return score
    return lambda res: res.score(score, prop)


def grid_search(
    fit_predict: FitPredict,
    y: np.ndarray,
    param_grid: Mapping[str, Sequence[Any]],
    *,
    score: str | Callable[[CVResult], float] = "RMSE",
    prop: str | None = None,
    **cv_kwargs: Any,
) -> GridSearchResult:
    """Cross-validate every combination of ``param_grid`` (same folds for all) and pick
    the lowest score: mean over folds of metric ``score`` (averaged over properties
    unless ``prop``), or ``score(cv_result)`` if callable."""
    scorer = _scorer(score, prop)
    results = []
    for params in parameter_grid(param_grid):
        res = cross_validate(fit_predict, y, params=params, **cv_kwargs)
        results.append((params, res, float(scorer(res))))
    finite = [i for i, r in enumerate(results) if math.isfinite(r[2])]
    if not finite:
        raise ValueError("no grid point gave a finite score")
    best = min(finite, key=lambda i: results[i][2])
    return GridSearchResult(results, dict(results[best][0]), results[best][2], results[best][1])


def nested_cross_validate(
    fit_predict: FitPredict,
    y: np.ndarray,
    param_grid: Mapping[str, Sequence[Any]],
    *,
    n_splits: int = DEFAULT_N_SPLITS,
    inner_splits: int | None = None,
    n_repeats: int = 1,
    seed: int | Sequence[int] | None = 0,
    groups: Sequence[Any] | np.ndarray | None = None,
    shuffle: bool = True,
    metric: MetricFn = regression_metrics,
    score: str | Callable[[CVResult], float] = "RMSE",
    prop: str | None = None,
) -> CVResult:
    """Test / validation / training CV (Charpentier 2025): for each outer fold, the
    hyper-parameters are chosen by a grid search with inner k-fold CV on the outer
    training set only, then the model is refitted there and scored on the outer test
    fold. Fold records carry the chosen ``params``."""
    y = np.asarray(y)
    n = y.shape[0]
    g_all = None if groups is None else np.asarray(groups)
    k_inner = inner_splits or max(2, n_splits - 1)
    records: list[dict[str, Any]] = []
    pooled: list[Metrics] = []
    split_sets = _split_sets(n, n_splits, n_repeats, seed, groups, None, shuffle)
    preds = np.full((len(split_sets),) + y.shape, np.nan)
    for r, splits in enumerate(split_sets):
        for f, (train, test) in enumerate(splits):

            def inner(tr: np.ndarray, te: np.ndarray, _train: np.ndarray = train, **p: Any) -> np.ndarray:
                return fit_predict(_train[tr], _train[te], **p)

            search = grid_search(
                inner,
                y[train],
                param_grid,
                score=score,
                prop=prop,
                n_splits=k_inner,
                seed=None if seed is None else 1000 * (r + 1) + f,
                groups=None if g_all is None else g_all[train],
                shuffle=shuffle,
                metric=metric,
                store_predictions=False,
            )
            pred = _predict_fold(fit_predict, train, test, y, search.best_params)
            preds[r, test] = pred
            records.append(
                {
                    "repeat": r,
                    "fold": f,
                    "n_train": int(train.size),
                    "n_test": int(test.size),
                    "params": search.best_params,
                    "inner_score": search.best_score,
                    "metrics": _normalise_metrics(metric(y[test], pred)),
                }
            )
        pooled.append(_normalise_metrics(metric(y, preds[r])))
    mean, std = _aggregate([rec["metrics"] for rec in records])
    return CVResult(records, mean, std, pooled, preds, {"param_grid": {k: list(v) for k, v in param_grid.items()}})


# ---------------------------------------------------------------------- learning curve
@dataclass
class LearningCurveResult:
    """Errors versus training-set size: ``mean[i]``/``std[i]`` over folds for
    ``fractions[i]`` of each training fold (``n_train[i]`` samples on average)."""

    fractions: np.ndarray
    n_train: np.ndarray
    mean: list[Metrics]
    std: list[Metrics]
    folds: list[dict[str, Any]]

    def curve(self, metric: str = "RMSE", prop: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_train, mean, std) arrays of one metric (averaged over properties unless ``prop``)."""
        props = [prop] if prop is not None else list(self.mean[0])
        m = np.array([np.mean([mm[p][metric] for p in props]) for mm in self.mean])
        s = np.array([np.mean([ss[p][metric] for p in props]) for ss in self.std])
        return self.n_train.copy(), m, s

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {"fractions": self.fractions, "n_train": self.n_train, "mean": self.mean, "std": self.std}
        )


def learning_curve(
    fit_predict: FitPredict,
    y: np.ndarray,
    train_fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.7, 1.0),
    *,
    n_splits: int = DEFAULT_N_SPLITS,
    n_repeats: int = 1,
    seed: int | Sequence[int] | None = 0,
    groups: Sequence[Any] | np.ndarray | None = None,
    folds: Sequence[int] | np.ndarray | None = None,
    shuffle: bool = True,
    metric: MetricFn = regression_metrics,
    params: Mapping[str, Any] | None = None,
) -> LearningCurveResult:
    """Train on nested random subsets (fraction f of each training fold; whole groups
    when ``groups`` are given) and score on the full test fold."""
    y = np.asarray(y)
    n = y.shape[0]
    params = dict(params or {})
    fr = np.asarray(train_fractions, dtype=float)
    if fr.ndim != 1 or fr.size == 0 or np.any(fr <= 0) or np.any(fr > 1):
        raise ValueError("train_fractions must be values in (0, 1]")
    g_all = None if groups is None else np.asarray(groups)
    split_sets = _split_sets(n, n_splits, n_repeats, seed, groups, folds, shuffle)
    per_fraction: list[list[Metrics]] = [[] for _ in fr]
    sizes: list[list[int]] = [[] for _ in fr]
    records: list[dict[str, Any]] = []
    base = 0 if seed is None or not isinstance(seed, (int, np.integer)) else int(seed)
    rng = np.random.default_rng(base + 7919)
    for r, splits in enumerate(split_sets):
        for f, (train, test) in enumerate(splits):
            if g_all is None:
                order = train[rng.permutation(train.size)]
                subsets = [order[: max(1, int(round(x * train.size)))] for x in fr]
            else:
                labels = np.unique(g_all[train])
                labels = labels[rng.permutation(labels.size)]
                subsets = []
                for x in fr:
                    chosen = labels[: max(1, int(round(x * labels.size)))]
                    subsets.append(train[np.isin(g_all[train], chosen)])
            for i, sub in enumerate(subsets):
                sub = np.sort(sub)
                pred = _predict_fold(fit_predict, sub, test, y, params)
                m = _normalise_metrics(metric(y[test], pred))
                per_fraction[i].append(m)
                sizes[i].append(int(sub.size))
                records.append(
                    {"repeat": r, "fold": f, "fraction": float(fr[i]), "n_train": int(sub.size), "metrics": m}
                )
    means, stds = zip(*(_aggregate(ms) for ms in per_fraction))
    return LearningCurveResult(fr, np.array([np.mean(s) for s in sizes]), list(means), list(stds), records)


# ------------------------------------------------------------------- NMR models
def cross_validate_model(
    dataset: TensorDataset,
    config: Mapping[str, Any],
    n_splits: int = DEFAULT_N_SPLITS,
    n_repeats: int = 1,
    seed: int = 0,
    structure_groups: Sequence[Any] | None = None,
    folds: Sequence[int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """k-fold CV over structures; returns ``{"folds": [metrics per fold], "summary":
    {prop: {element: {metric: {mean, std, n_folds, values}}}}}`` (:func:`fold_statistics`).

    ``structure_groups`` keeps structures of one group in one fold; ``folds`` (one fold
    id per structure) fixes the split (then ``n_repeats`` is 1).
    """
    from tqdm import tqdm

    repeats = 1 if folds is not None else n_repeats
    splits = [split for partition in _split_sets(len(dataset), n_splits, repeats, seed, structure_groups, folds, True)
              for split in partition]
    records = []
    for train, test in tqdm(splits, desc="cross-validation", unit="fold", disable=not progress):
        model = NMRModel.train(dataset, config, progress=False, structure_indices=train)
        metrics, _ = evaluate(model, dataset.subset(test))
        records.append(metrics)
    return {"folds": records, "summary": fold_statistics(records), "n_splits": n_splits, "n_repeats": repeats}


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


def _summary_score(summary: Mapping, score: tuple[str, str, str]) -> float:
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

    combos = parameter_grid(grid)
    configs = [config_with(config, assignment) for assignment in combos]
    cache = cache if cache is not None else ResultCache(None)
    table = []
    for assignment, candidate in tqdm(list(zip(combos, configs)), desc="grid search", unit="config",
                                      disable=not progress):
        key = canonical_json({"config": candidate, "cv": {k: v for k, v in cv_options.items() if k != "progress"},
                              "sources": list(dataset.sources), "frames": list(dataset.frames)})
        summary = cache.get_or_compute(
            f"grid_{short_hash(key)}", key, lambda: cross_validate_model(dataset, candidate, **cv_options)["summary"],
            budget=budget, what=f"grid point {assignment}")
        table.append({"params": assignment, "score": _summary_score(summary, score), "summary": summary})
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


# ------------------------------------------------------- searches on a score function
def grid_walk(score: Callable[[int], float], n_points: int, start: int,
              min_gain: float = 0.0) -> tuple[int, float, dict[int, float]]:
    """Downhill walk on the grid indices 0..n_points-1 from ``start``: step to the better
    neighbour (the lower index on ties) while its score is below (1 − ``min_gain``) × the
    current one. Returns (index, its score, {index: score} of every point scored); the
    minimum of a U-shaped curve in far fewer evaluations than the whole grid."""
    if not 0 <= start < n_points:
        raise ValueError(f"start index {start} outside 0..{n_points - 1}")
    seen: dict[int, float] = {}

    def value(i: int) -> float:
        if not 0 <= i < n_points:
            return math.inf
        if i not in seen:
            seen[i] = float(score(i))
        return seen[i]

    i = start
    while True:
        here, left, right = value(i), value(i - 1), value(i + 1)
        if min(left, right) < here * (1.0 - min_gain):
            i = i - 1 if left <= right else i + 1
        else:
            return i, here, dict(sorted(seen.items()))


@dataclass
class OneStandardErrorChoice:
    """Outcome of :func:`one_standard_error_choice`: the ``chosen`` candidate, the ``best``
    one (lowest mean score), its mean score and standard error, the ``threshold`` (score
    + SE of the best) and the candidates ``within`` it, in the order of the choice."""

    chosen: Hashable
    best: Hashable
    best_score: float
    standard_error: float
    threshold: float
    within: list[Hashable]


def one_standard_error_choice(fold_scores: Mapping[Hashable, Sequence[float]],
                              order: Callable[[Hashable], Any]) -> OneStandardErrorChoice:
    """One-standard-error rule (Hastie, Tibshirani & Friedman, *The Elements of Statistical
    Learning*, 2nd ed., §7.10, doi:10.1007/978-0-387-84858-7) on per-fold scores (lower is
    better) of every candidate, all over the same K ≥ 2 folds::

        score(c) = mean_k s_k(c),   b = argmin_c score(c)   (ties: first by ``order``)
        SE_b = std_k(s_k(b); ddof = 1) / sqrt(K)            (the SE of the best point)
        chosen = first of {c : score(c) <= score(b) + SE_b} sorted by (order(c), score(c))

    ``order(c)`` is the sort key of the preferred (simpler / more regularised) candidates,
    e.g. ``(-ridge, n_features)``; remaining ties go to the lower score, then to the
    candidate given first. Candidates with a non-finite fold score are left out."""
    scores = {c: np.asarray(s, dtype=float) for c, s in fold_scores.items()}
    n_folds = {s.shape for s in scores.values()}
    if len(n_folds) != 1 or len(next(iter(n_folds))) != 1 or next(iter(n_folds))[0] < 2:
        raise ValueError(f"every candidate needs scores on the same K >= 2 folds, got shapes {sorted(n_folds)}")
    finite = [c for c, s in scores.items() if np.all(np.isfinite(s))]
    if not finite:
        raise ValueError("no candidate has finite scores on every fold")
    mean = {c: float(np.mean(scores[c])) for c in finite}
    best = min(finite, key=lambda c: (mean[c], order(c)))
    standard_error = float(np.std(scores[best], ddof=1) / math.sqrt(scores[best].size))
    threshold = mean[best] + standard_error
    within = sorted((c for c in finite if mean[c] <= threshold), key=lambda c: (order(c), mean[c]))
    return OneStandardErrorChoice(within[0], best, mean[best], standard_error, threshold, within)


def staged_search(
    tracks: Sequence[Hashable],
    start: Mapping[str, Any],
    stages: Sequence[tuple],
    score: Callable[[Hashable, dict[str, Any], Any], tuple[float, Any, dict[str, Any]]],
    hint: Any = None,
    group_key: Callable[[dict[str, Any]], str] = canonical_json,
) -> tuple[dict[Hashable, dict[str, Any]], dict[Hashable, list[dict[str, Any]]]]:
    """Greedy coordinate search, one parameter at a time, for several independent
    ``tracks`` (e.g. species × outer fold) in step.

    Every track starts at ``start`` (scored as stage "start"); a stage (p, values), or
    (p, values, tracks) for a stage of some tracks only, scores the
    track's best setting so far with p set to each value and keeps the lowest score if it
    beats the track's best (the first on ties). ``score(track, setting, hint) -> (score,
    hint, info)`` carries a track's ``hint`` (e.g. the α index where the last walk ended)
    from its best setting to the next candidates. Within a stage the candidates are scored
    grouped by ``group_key(setting)`` (sorted), then in track order, so that a scorer
    building features per group builds them once. Returns ({track: {"setting", "hint",
    "score"}}, {track: [{"stage", "setting", **info} per candidate]}).
    """
    state = {t: {"setting": dict(start), "hint": hint, "score": math.inf} for t in tracks}
    history: dict[Hashable, list[dict[str, Any]]] = {t: [] for t in tracks}
    for stage in [("start", [None])] + list(stages):
        parameter, values = stage[0], stage[1]
        applies = set(stage[2]) if len(stage) > 2 else None
        candidates = []
        for order, track in enumerate(tracks):
            if applies is not None and track not in applies:
                continue
            for value in values:
                setting = dict(state[track]["setting"])
                if value is not None:
                    setting[parameter] = value
                candidates.append((group_key(setting), order, track, setting))
        results: dict[Hashable, list] = {}
        for _, _, track, setting in sorted(candidates, key=lambda c: (c[0], c[1])):
            value, next_hint, info = score(track, setting, state[track]["hint"])
            results.setdefault(track, []).append((value, setting, next_hint))
            history[track].append({"stage": parameter, "setting": setting, **info})
        for track in tracks:
            if track not in results:
                continue
            best = min(results[track], key=lambda r: r[0])
            if best[0] < state[track]["score"]:
                state[track] = {"setting": best[1], "hint": best[2], "score": best[0]}
    return state, history
