"""Fitting NMR models: descriptor and regressor factories, ridge selection for the
equivariant models, and the training of a whole :class:`~ase_mlnmr.nmr_model.NMRModel`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..descriptors import LambdaSOAP, SOAP, atomic_number_of
from ..models.linear import EquivariantRidge, RidgeRegression, equivariant_feature_scale
from ..models.model_file import make_provenance
from ..models.nystrom import NystromKernelRidge
from ..nmr_model import PROPERTIES, SOURCE_TENSOR, NMRModel, PropertyModel, regression_targets
from .config import DEFAULT_CONFIG, descriptor_parameters, merge_config
from .dataset import TensorDataset

__all__ = ["train_model", "fit_property_model", "build_descriptor", "build_regressor",
           "select_equivariant_alpha", "select_equivariant_ridge", "ALPHA_GRID", "AUTO_FEATURE_SCALINGS"]


def _median_distance(features: np.ndarray, normalise: bool, seed: int = 0) -> float:
    """Median Euclidean distance between random pairs of standardised feature rows."""
    x = features
    if normalise:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    rng = np.random.default_rng(seed)
    n = len(x)
    i, j = rng.integers(0, n, size=(2, min(4000, n * n)))
    distances = np.linalg.norm(x[i] - x[j], axis=1)
    distances = distances[distances > 0]
    return float(np.median(distances)) if len(distances) else 1.0


def _selection_features(descriptor: SOAP | LambdaSOAP, data: TensorDataset, selection) -> np.ndarray:
    """Features of the selected atoms, in the order of the selection."""
    blocks = []
    for structure in np.unique(selection.structure_index):
        rows = selection.structure_index == structure
        blocks.append((np.flatnonzero(rows), descriptor.create(data.structures[structure],
                                                                centres=selection.atom_index[rows])))
    shape = (len(selection),) + blocks[0][1].shape[1:]
    out = np.empty(shape)
    for rows, features in blocks:
        out[rows] = features
    return out


def build_descriptor(prop: str, neighbours: Sequence[str], config: Mapping[str, Any]) -> SOAP | LambdaSOAP:
    """The descriptor a property uses: SOAP for σiso, λ-SOAP (λ = 2 or 1) otherwise."""
    parameters = descriptor_parameters(neighbours, config)
    if prop == "ms_iso":
        return SOAP(neighbours, **parameters)
    if prop == "ms_antisym":
        return LambdaSOAP(neighbours, lam=1, two_body=False, **parameters)
    return LambdaSOAP(neighbours, lam=2, two_body=bool(config[prop].get("two_body", True)), **parameters)


def build_regressor(prop: str, config: Mapping[str, Any], features: np.ndarray):
    """The regressor of a property from its settings (length scale from the data if asked).

    ``ms_iso`` Nyström settings: ``kernel`` ("gaussian", default, or "dot_product"),
    ``zeta`` (dot product, default 2), ``n_inducing``, ``ridge``, ``normalize_features``,
    ``standardize_features`` (default: True for the Gaussian, False for the dot product),
    and for the Gaussian ``length_scale`` or ``length_scale_factor`` × the median distance
    between feature rows preprocessed the same way.
    """
    settings = config[prop]
    if prop == "ms_iso":
        if settings.get("regressor", "nystrom") == "linear":
            return RidgeRegression(alpha=float(settings.get("alpha", 1e-6)))
        kernel = str(settings.get("kernel", "gaussian"))
        normalise = bool(settings.get("normalize_features", False))
        standardise = settings.get("standardize_features")
        common = dict(n_inducing=int(settings.get("n_inducing", 2000)), ridge=float(settings.get("ridge", 1e-6)),
                      standardize_features=None if standardise is None else bool(standardise), kernel=kernel)
        if kernel == "dot_product":  # no length scale: k = (x̂·ŷ)^ζ
            return NystromKernelRidge(length_scale=1.0, zeta=settings.get("zeta", 2), **common)
        length = settings.get("length_scale")
        if not length:
            if standardise is None or bool(standardise):
                median = _median_distance(features, normalise)
            else:  # unstandardised: median distance of the (normalised) raw rows
                x = np.asarray(features, dtype=float)
                if normalise:
                    norms = np.linalg.norm(x, axis=1, keepdims=True)
                    x = x / np.where(norms > 0, norms, 1.0)
                i, j = np.random.default_rng(0).integers(0, len(x), size=(2, min(4000, len(x) ** 2)))
                distances = np.linalg.norm(x[i] - x[j], axis=1)
                distances = distances[distances > 0]
                median = float(np.median(distances)) if len(distances) else 1.0
            length = settings.get("length_scale_factor", 1.0) * median
        return NystromKernelRidge(length_scale=float(length), normalize_features=normalise, **common)
    alpha = settings.get("alpha", "auto")
    scaling = settings.get("feature_scaling", "auto")
    return EquivariantRidge(lam=1 if prop == "ms_antisym" else 2, alpha=1e-6 if alpha == "auto" else float(alpha),
                            feature_scaling="per_feature" if scaling == "auto" else scaling)


#: Feature scalings tried by ``feature_scaling: "auto"`` (with ``alpha: "auto"``).
AUTO_FEATURE_SCALINGS = ("per_feature", "global")

#: Ridge values tried by ``alpha: "auto"`` for the equivariant (λ-SOAP) models (half decades).
ALPHA_GRID = tuple(10.0 ** (k / 2) for k in range(-12, 9))


def select_equivariant_alpha(features: np.ndarray, targets: np.ndarray, groups: np.ndarray,
                             grid: Sequence[float] = ALPHA_GRID, n_splits: int = 5,
                             feature_scaling: str = "per_feature") -> tuple[float, np.ndarray]:
    """Ridge α of an :class:`EquivariantRidge` by grouped k-fold CV on the training data.

    Features are scaled as the model scales them (``feature_scaling``; targets need no
    scaling: the ridge solution is linear in them), one eigendecomposition per fold of the
    smaller of XᵀX and XXᵀ serves every α. Returns the α with the lowest component MAE
    and the MAE of every α.
    """
    from .validation import fold_assignment

    n, k, p = features.shape
    labels = np.asarray(groups)
    n_groups = len(np.unique(labels))
    if n_groups >= 2:
        folds = fold_assignment(n, min(n_splits, n_groups), groups=labels, seed=0)
    else:
        folds = fold_assignment(n, min(n_splits, n), seed=0)
    errors = np.zeros(len(grid))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        x_train = features[train].reshape(-1, p)
        scale = equivariant_feature_scale(x_train, feature_scaling)
        x_train = x_train / scale
        y_train = targets[train].reshape(-1)
        x_test = features[test].reshape(-1, p) / scale
        y_test = targets[test].reshape(-1)
        if p <= x_train.shape[0]:
            evals, vectors = np.linalg.eigh(x_train.T @ x_train)
            projected = vectors.T @ (x_train.T @ y_train)
            weights = [vectors @ (projected / (np.maximum(evals, 0) + a)) for a in grid]
        else:
            evals, vectors = np.linalg.eigh(x_train @ x_train.T)
            projected = vectors.T @ y_train
            weights = [x_train.T @ (vectors @ (projected / (np.maximum(evals, 0) + a))) for a in grid]
        for index, w in enumerate(weights):
            errors[index] += np.abs(x_test @ w - y_test).sum()
    errors /= targets.size
    return float(grid[int(np.argmin(errors))]), errors


def select_equivariant_ridge(features: np.ndarray, targets: np.ndarray, groups: np.ndarray,
                             feature_scalings: Sequence[str] = AUTO_FEATURE_SCALINGS,
                             grid: Sequence[float] = ALPHA_GRID,
                             n_splits: int = 5) -> tuple[str, float, dict[str, np.ndarray]]:
    """Feature scaling and α of an :class:`EquivariantRidge` by grouped k-fold CV.

    Runs :func:`select_equivariant_alpha` for every scaling; returns the pair with the
    lowest component MAE and the MAE curves ``{scaling: errors over grid}``.
    """
    curves = {}
    best = (np.inf, feature_scalings[0], float(grid[0]))
    for scaling in feature_scalings:
        alpha, errors = select_equivariant_alpha(features, targets, groups, grid, n_splits, scaling)
        curves[scaling] = errors
        if float(np.min(errors)) < best[0]:
            best = (float(np.min(errors)), scaling, alpha)
    return best[1], best[2], curves


def fit_property_model(element: str, prop: str, data: TensorDataset, selection, neighbours: Sequence[str],
                       config: Mapping[str, Any]) -> PropertyModel:
    """Fit one property model of one element on the selected atoms."""
    descriptor = build_descriptor(prop, neighbours, config)
    features = _selection_features(descriptor, data, selection)
    regressor = build_regressor(prop, config, features)
    targets = regression_targets(prop, selection.tensors)
    if isinstance(regressor, EquivariantRidge) and config[prop].get("alpha", "auto") == "auto":
        # feature_scaling "auto" is chosen together with alpha; with a fixed alpha it means per_feature
        scaling = config[prop].get("feature_scaling", "auto")
        candidates = AUTO_FEATURE_SCALINGS if scaling == "auto" else (scaling,)
        regressor.feature_scaling, regressor.alpha, _ = select_equivariant_ridge(
            features, targets, selection.structure_index, candidates)
    regressor.fit(features, targets)
    return PropertyModel(element=element, prop=prop, descriptor=descriptor, regressor=regressor)


def train_model(
    dataset: TensorDataset,
    config: Mapping[str, Any] | None = None,
    progress: bool = True,
    structure_indices: Sequence[int] | None = None,
) -> NMRModel:
    """Fit property models for the elements and properties in ``config``.

    ``config`` keys (all optional, merged over :data:`~ase_mlnmr.training.config.DEFAULT_CONFIG`):
    ``species`` {element: {"properties": [...], "descriptor": {...}, <prop>: {...}}}
    (default: every element carrying a tensor, with the properties the data allows),
    ``neighbour_species`` (default: all elements in the data), ``descriptor``,
    per-property settings, ``calibration``, ``isotopes``.
    """
    from tqdm import tqdm

    config = merge_config(DEFAULT_CONFIG, config or {})
    data = dataset if structure_indices is None else dataset.subset(structure_indices)
    all_elements = sorted({s for atoms in data.structures for s in atoms.get_chemical_symbols()},
                          key=atomic_number_of)
    neighbours = config.get("neighbour_species") or all_elements
    species_config = config.get("species") or {
        element: {} for element in all_elements
        if any(data.select(prop, element).tensors.size for prop in ("ms", "efg"))
    }
    tasks = []
    for element, own in species_config.items():
        element_config = merge_config(config, own or {})
        available = [p for p in PROPERTIES if len(data.select(SOURCE_TENSOR[p], element))]
        if data.symmetrised_shielding and "ms_antisym" in available:
            available.remove("ms_antisym")  # σ(1) was discarded when reading
        wanted = element_config.get("properties") or [p for p in available if p != "ms_antisym"]
        for prop in wanted:
            if prop not in PROPERTIES:
                raise ValueError(f"unknown property {prop!r} for {element}; expected one of {PROPERTIES}")
            if prop not in available:
                raise ValueError(f"no {SOURCE_TENSOR[prop]} tensors of {element} in the training data for {prop}")
            tasks.append((element, prop, element_config))
        tasks.append((element, "ood", element_config))
    models, ood = [], {}
    bar = tqdm(tasks, desc="training", unit="model", disable=not progress)
    for element, prop, element_config in bar:
        bar.set_postfix_str(f"{element} {prop}")
        if prop == "ood":
            source = "ms" if len(data.select("ms", element)) else "efg"
        else:
            source = SOURCE_TENSOR[prop]
        selection = data.select(source, element)
        if prop == "ood":
            iso_model = next((m for m in models if m.element == element and m.prop == "ms_iso"), None)
            if iso_model is not None and isinstance(iso_model.regressor, NystromKernelRidge):
                ood[element] = (iso_model.descriptor, iso_model.regressor)
                continue
            descriptor = SOAP(neighbours, **descriptor_parameters(neighbours, element_config))
            features = _selection_features(descriptor, data, selection)
            settings = element_config["ood"]
            nystrom = NystromKernelRidge(
                n_inducing=int(settings["n_inducing"]),
                length_scale=settings.get("length_scale") or
                settings["length_scale_factor"] * _median_distance(features, False),
                ridge=1e-6,
            )
            ood[element] = (descriptor, nystrom.fit(features, np.zeros(len(features))))
            continue
        models.append(fit_property_model(element, prop, data, selection, neighbours, element_config))
    sources = sorted(set(data.sources))
    files = [source for source in sources if Path(source).is_file()]
    metadata = {"provenance": make_provenance(files, sources=sources, n_structures=len(data), config=config)}
    model = NMRModel(models, ood, config.get("calibration"), config.get("isotopes"), metadata)
    model.fit_ood_reference(data)  # held-out residuals: the reference of the OOD percentile
    return model


