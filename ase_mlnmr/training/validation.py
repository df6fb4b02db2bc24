"""Cross-validation, grid search and learning curves for any regression model: the fold
machinery of the training side. Whole NMR models are cross-validated over structures by
:mod:`ase_mlnmr.training.model_selection`, the ridge α and feature scaling of the
equivariant models chosen by :mod:`ase_mlnmr.training.ridge_selection`; both take their
folds from :func:`fold_assignment` / :func:`kfold_splits` here.

Everything works through a user-supplied ``fit_predict(train_idx, test_idx, **params)``
that trains on the samples ``train_idx`` and returns predictions for ``test_idx`` with
the shape of ``y[test_idx]``; targets may be scalars (n,), several scalars (n, T) or
tensors (n, ...). Errors are scored by a metric function
``metric(y_true, y_pred) -> {property: {metric_name: value}}``.

Metric definitions (per property, on a set of n reference values y and predictions f):

* MAE = mean |f - y|, RMSE = sqrt(mean (f - y)^2) (units of the target);
* %RMSE = 100 * RMSE / std(y), std the population (ddof = 0) standard deviation of the
  reference values of the same set (so 100 % = predicting the set mean);
* :func:`tensor_metrics` uses Euclidean/Frobenius norms per sample instead:
  MAE = mean |e_i|, RMSE = sqrt(mean |e_i|^2), %RMSE = 100 RMSE / sqrt(mean |y_i - ybar|^2).

Folds (Charpentier 2025: k = 5, repeated after reshuffling): shuffled k-fold; with
``groups`` whole groups go to one fold (groups taken in random order, each to the fold
with the fewest samples so far); or an explicit fold id per sample. Aggregates are the
mean and sample standard deviation (ddof = 1; 0 for one fold) over all folds of all
repeats, plus "pooled" metrics on the out-of-fold predictions of each repeat.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "fold_assignment",
    "kfold_splits",
    "regression_metrics",
    "tensor_metrics",
    "CVResult",
    "cross_validate",
    "GridSearchResult",
    "grid_search",
    "nested_cross_validate",
    "LearningCurveResult",
    "learning_curve",
]

Split = tuple[np.ndarray, np.ndarray]
Metrics = dict[str, dict[str, float]]
FitPredict = Callable[..., np.ndarray]
MetricFn = Callable[[np.ndarray, np.ndarray], Mapping[str, Any]]


# --------------------------------------------------------------------------- folds
def fold_assignment(
    n_samples: int,
    n_splits: int = 5,
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
    n_splits: int = 5,
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


def _aggregate(records: Sequence[Metrics]) -> tuple[Metrics, Metrics]:
    mean: Metrics = {}
    std: Metrics = {}
    for prop in records[0]:
        mean[prop], std[prop] = {}, {}
        for key in records[0][prop]:
            values = np.array([r[prop][key] for r in records], dtype=float)
            mean[prop][key] = float(np.mean(values))
            std[prop][key] = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return mean, std


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
    n_splits: int = 5,
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


def _param_grid(param_grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
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
    for params in _param_grid(param_grid):
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
    n_splits: int = 5,
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
    n_splits: int = 5,
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
