"""Fitting NMR models: descriptor and regressor factories, target checks, and the
training of a whole :class:`~ase_mlnmr.nmr_model.NMRModel`.

Every default comes from :mod:`ase_mlnmr.training.config`; α and feature scaling of the
equivariant models are chosen by :mod:`ase_mlnmr.training.ridge_selection`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..descriptors import LambdaSOAP, SOAP, atomic_number_of
from ..models.committee import CommitteeSettings, committee_design
from ..models.linear import EquivariantRidge, RidgeRegression
from ..models.model_file import make_provenance
from ..models.nystrom import NystromKernelRidge
from ..nmr_model import PROPERTIES, SOURCE_TENSOR, NMRModel, PropertyModel, regression_targets
from .config import (ConfigError, descriptor_parameters, minimum_structures, section_settings, species_config,
                     validate_config)
from .dataset import TensorDataset
from .ridge_selection import FoldGrams, equivariant_folds, fit_equivariant_ridge, search_equivariant_ridge

__all__ = ["train_model", "fit_property_model", "build_descriptor", "build_regressor", "median_distance",
           "check_targets", "TrainingDataError", "SkippedTrainingWarning"]


class TrainingDataError(ValueError):
    """Training data that cannot give a usable model: nothing to fit, too few tensors,
    non-finite or absurd targets, or a fit with non-finite parameters."""


class SkippedTrainingWarning(UserWarning):
    """An element / property the default config does not train (too little data; see ``rules``)."""


def median_distance(features: np.ndarray, normalise: bool, standardise: bool = True, seed: int = 0) -> float:
    """Median Euclidean distance between up to 4000 random pairs of feature rows (distinct
    rows only), after the preprocessing of the Gaussian Nyström model: rows to unit length
    if ``normalise``, then columns to zero mean and unit standard deviation if ``standardise``."""
    x = np.asarray(features, dtype=float)
    if normalise:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    if standardise:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    n = len(x)
    i, j = np.random.default_rng(seed).integers(0, n, size=(2, min(4000, n * n)))
    chunk = 256  # pairs per block: bounds the (pairs × features) temporary
    distances = np.concatenate([np.linalg.norm(x[i[k:k + chunk]] - x[j[k:k + chunk]], axis=1)
                                for k in range(0, len(i), chunk)])
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
    return LambdaSOAP(neighbours, lam=2, two_body=bool(section_settings(prop, config)["two_body"]), **parameters)


def build_regressor(prop: str, config: Mapping[str, Any], features: np.ndarray):
    """The regressor of a property from its settings (defaults: ``training.config.SCHEMA``).

    ``ms_iso``: Nyström kernel ridge (``kernel`` "gaussian" or "dot_product" with ``zeta``,
    ``n_inducing``, ``ridge``, ``normalize_features``, ``standardize_features``; Gaussian
    width ``length_scale``, or ``length_scale_factor`` × :func:`median_distance` of the
    feature rows preprocessed as the model does), or ``regressor: "linear"`` ridge with
    ``alpha``. Equivariant properties: an :class:`EquivariantRidge` with the configured
    α and scaling (``"auto"``: the class default α and per-feature scaling until the search
    replaces them; ``feature_scaling: "auto"`` with a fixed α means per-feature).
    """
    settings = section_settings(prop, config)
    if prop == "ms_iso":
        if settings["regressor"] == "linear":
            return RidgeRegression(alpha=settings["alpha"])
        kernel = settings["kernel"]
        standardise = settings["standardize_features"]
        common = dict(n_inducing=settings["n_inducing"], ridge=settings["ridge"], standardize_features=standardise,
                      kernel=kernel, zeta=settings["zeta"])
        if kernel == "dot_product":  # no length scale: k = (x̂·ŷ)^ζ
            return NystromKernelRidge(**common)
        length = settings["length_scale"]
        if length is None:
            standardised = standardise is None or standardise
            length = settings["length_scale_factor"] * median_distance(features, settings["normalize_features"],
                                                                      standardised)
        return NystromKernelRidge(length_scale=float(length), normalize_features=settings["normalize_features"],
                                  **common)
    alpha, scaling = settings["alpha"], settings["feature_scaling"]
    fixed_alpha = {} if alpha == "auto" else {"alpha": alpha}
    return EquivariantRidge(lam=1 if prop == "ms_antisym" else 2, feature_scaling="per_feature" if scaling == "auto"
                            else scaling, **fixed_alpha)


def _where(data: TensorDataset, structure: int, atom: int | None = None) -> str:
    text = f"{data.sources[structure]} (structure {structure}, frame {data.frames[structure]})"
    if atom is not None:
        symbol = data.structures[structure].get_chemical_symbols()[atom]
        text += f", atom {atom} ({symbol})"
    return text


def check_targets(data: TensorDataset, selection, rules: Mapping[str, Any]) -> None:
    """Raise :class:`TrainingDataError` naming the structure (source file) and atom of the
    first non-finite or absurd tensor: |component| above ``rules.max_abs_shielding_ppm``
    (σ, ppm) or ``rules.max_abs_efg_au`` (V, a.u.)."""
    tensors = selection.tensors.reshape(len(selection), 9)
    limit_key = "max_abs_shielding_ppm" if selection.prop == "ms" else "max_abs_efg_au"
    unit = "ppm" if selection.prop == "ms" else "a.u."
    bad_finite = ~np.isfinite(tensors).all(axis=1)
    with np.errstate(invalid="ignore"):
        bad_size = np.nanmax(np.abs(np.where(np.isfinite(tensors), tensors, 0.0)), axis=1) > rules[limit_key]
    for k in np.flatnonzero(bad_finite | bad_size)[:1]:
        where = _where(data, int(selection.structure_index[k]), int(selection.atom_index[k]))
        if bad_finite[k]:
            raise TrainingDataError(f"{selection.prop} tensor of {where} is not finite: {tensors[k].tolist()}")
        raise TrainingDataError(
            f"{selection.prop} tensor of {where} has a component of {np.abs(tensors[k]).max():.6g} {unit}, beyond "
            f"rules.{limit_key} = {rules[limit_key]:g} {unit} (absurd for DFT; raise the rule to train on it)")


def _check_fitted(regressor, what: str) -> None:
    arrays, _ = regressor.to_arrays()
    bad = sorted(name for name, value in arrays.items()
                 if np.issubdtype(np.asarray(value).dtype, np.number) and not np.isfinite(value).all())
    if bad:
        raise TrainingDataError(f"fitting {what} gave non-finite parameters ({', '.join(bad)}): "
                                "check the targets and the regularisation (ridge / alpha)")


def fit_property_model(element: str, prop: str, data: TensorDataset, selection, neighbours: Sequence[str],
                       config: Mapping[str, Any]) -> PropertyModel:
    """Fit one property model of one element on the selected atoms (targets checked first)."""
    check_targets(data, selection, section_settings("rules", config))
    descriptor = build_descriptor(prop, neighbours, config)
    features = _selection_features(descriptor, data, selection)
    regressor = build_regressor(prop, config, features)
    targets = regression_targets(prop, selection.tensors)
    settings = section_settings(prop, config)
    committee = CommitteeSettings(**section_settings("committee", config))
    try:
        member_rows = committee_design(selection.groups, committee) if committee.size else None
    except ValueError as error:
        raise ConfigError(f"committee of {element} {prop}: {error}") from None
    if member_rows is not None and isinstance(regressor, RidgeRegression):
        raise ConfigError(f"{element} ms_iso: committees are available for the Nyström regressor, not "
                          '"linear"; set committee.size to 0 or ms_iso.regressor to "nystrom"')
    if isinstance(regressor, EquivariantRidge) and settings["alpha"] == "auto":
        selection_settings = section_settings("selection", config)
        scaling = settings["feature_scaling"]
        # feature_scaling "auto" is chosen together with alpha; with a fixed alpha it means per_feature
        candidates = selection_settings["auto_feature_scalings"] if scaling == "auto" else [scaling]
        grams = FoldGrams(features, targets, equivariant_folds(selection.structure_index,
                                                               selection_settings["n_splits"]))
        chosen = search_equivariant_ridge(grams, candidates, selection_settings["alpha_grid"],
                                          selection_settings["alpha_search"])
        regressor = fit_equivariant_ridge(grams, regressor.lam, chosen.feature_scaling, chosen.alpha,
                                          features, targets)
        if member_rows is not None:
            regressor.fit_members(features, targets, member_rows, committee.calibration)
    elif isinstance(regressor, (NystromKernelRidge, EquivariantRidge)):
        regressor.fit(features, targets, member_rows=member_rows, calibration=committee.calibration)
    else:
        regressor.fit(features, targets)
    _check_fitted(regressor, f"{element} {prop}")
    return PropertyModel(element=element, prop=prop, descriptor=descriptor, regressor=regressor)


def _files_of(data: TensorDataset, selection=None) -> str:
    structures = range(len(data)) if selection is None else np.unique(selection.structure_index)
    files = list(dict.fromkeys(data.sources[int(i)] for i in structures))
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    return shown or "no files"


def _plan(data: TensorDataset, config: Mapping[str, Any]) -> tuple[list[tuple[str, str, dict]], list[str]]:
    """(element, property, settings) to fit, and the reasons of what the rules skipped.

    A property listed in a species' ``properties`` must be fittable (else an error names
    the files); otherwise what the data allows is trained unless it has fewer than
    ``rules.min_structures`` structures or ``rules.min_sites`` sites (then skipped).
    """
    all_elements = sorted({s for atoms in data.structures for s in atoms.get_chemical_symbols()},
                          key=atomic_number_of)
    species = config["species"] or {element: {} for element in all_elements
                                     if any(len(data.select(p, element)) for p in ("ms", "efg"))}
    tasks, skipped = [], []
    for element, own in species.items():
        settings = species_config(config, element)
        explicit = own.get("properties")
        if element not in all_elements:
            raise TrainingDataError(f"species {element} has no atoms in the training data ({_files_of(data)})")
        available = [p for p in PROPERTIES if len(data.select(SOURCE_TENSOR[p], element))]
        if data.symmetrised_shielding and "ms_antisym" in available:
            available.remove("ms_antisym")  # σ(1) was discarded when reading
        if explicit and "ms_antisym" in explicit and "ms_antisym" not in available and data.symmetrised_shielding:
            raise TrainingDataError(f"ms_antisym of {element}: the shielding was symmetrised when reading "
                                    "(read with --keep-antisymmetric / symmetrise_shielding=False)")
        for prop in explicit or [p for p in available if p != "ms_antisym"]:
            selection = data.select(SOURCE_TENSOR[prop], element)
            n_sites, n_structures = len(selection), len(np.unique(selection.structure_index))
            needed = 2 if prop != "ms_iso" and settings[prop]["alpha"] == "auto" else 1
            if explicit:
                if n_sites < needed:
                    raise TrainingDataError(
                        f"{prop} of {element} needs at least {needed} {SOURCE_TENSOR[prop]} tensor(s) of {element}, "
                        f"the training data have {n_sites} (files: {_files_of(data)}); check that the files carry "
                        f"{SOURCE_TENSOR[prop]} blocks with units")
            else:
                too_few = []
                if n_structures < minimum_structures(settings, prop):
                    too_few.append(f"rules.min_structures = {minimum_structures(settings, prop)}")
                if n_sites < max(needed, settings["rules"]["min_sites"]):
                    too_few.append(f"rules.min_sites = {settings['rules']['min_sites']}" if n_sites < settings[
                        "rules"]["min_sites"] else f"the {needed} sites that cross-validating alpha needs")
                if too_few:
                    skipped.append(f"{element} {prop}: {n_sites} site(s) in {n_structures} structure(s), fewer than "
                                   f"{' and '.join(too_few)} (list it in species.{element}.properties or lower the "
                                   "rules to train it)")
                    continue
            tasks.append((element, prop, settings))
    return tasks, skipped


def _ood_model(element: str, data: TensorDataset, neighbours: Sequence[str], settings: Mapping[str, Any],
               models: Sequence[PropertyModel]) -> tuple[SOAP, NystromKernelRidge]:
    """Out-of-domain model of an element: its σiso Nyström model, else a Nyström fit on its sites."""
    iso_model = next((m for m in models if m.element == element and m.prop == "ms_iso"), None)
    if iso_model is not None and isinstance(iso_model.regressor, NystromKernelRidge):
        return iso_model.descriptor, iso_model.regressor
    selection = data.select("ms" if len(data.select("ms", element)) else "efg", element)
    descriptor = SOAP(neighbours, **descriptor_parameters(neighbours, settings))
    features = _selection_features(descriptor, data, selection)
    ood = settings["ood"]
    length = ood["length_scale"] or ood["length_scale_factor"] * median_distance(features, False)
    nystrom = NystromKernelRidge(n_inducing=ood["n_inducing"], length_scale=length, ridge=ood["ridge"])
    nystrom.fit(features, np.zeros(len(features)))
    _check_fitted(nystrom, f"{element} out-of-domain model")
    return descriptor, nystrom


def train_model(
    dataset: TensorDataset,
    config: Mapping[str, Any] | None = None,
    progress: bool = True,
    structure_indices: Sequence[int] | None = None,
    structure_groups: Sequence[int] | None = None,
) -> NMRModel:
    """Fit property models for the elements and properties in ``config``.

    ``config`` is checked by :func:`~ase_mlnmr.training.config.validate_config` (every key
    optional; see ``docs/models.md``). Without ``species``, every element carrying a tensor
    is trained with the properties the data allow, except those below ``rules`` (skipped
    with a :class:`SkippedTrainingWarning`). Raises :class:`TrainingDataError` when
    nothing is left to fit, a listed property lacks tensors, a target is non-finite or
    absurd, or a fit gives non-finite parameters. ``structure_groups`` (one label per
    structure of ``dataset``, e.g. near-duplicate families) are the groups the committee
    subsamples (default: the structures).
    """
    from tqdm import tqdm

    config = validate_config(config)
    data = dataset if structure_indices is None else dataset.subset(structure_indices)
    if structure_groups is not None:  # one label per structure of ``dataset``: the committee's groups
        structure_groups = np.asarray(structure_groups)
        if structure_groups.shape != (len(dataset),):
            raise ValueError(f"structure_groups needs one label per structure ({len(dataset)}), "
                             f"got shape {structure_groups.shape}")
        if structure_indices is not None:
            structure_groups = structure_groups[np.asarray(structure_indices, dtype=np.int64)]
    if len(data) == 0:
        raise TrainingDataError("nothing to fit: the training set has no structures")
    if not any(data.n_tensors(p) for p in ("ms", "efg")):
        raise TrainingDataError(f"nothing to fit: no shielding (ms) or EFG tensors in {_files_of(data)} "
                                "(a magres block without its units line, or all-NaN tensors, is not read)")
    all_elements = sorted({s for atoms in data.structures for s in atoms.get_chemical_symbols()},
                          key=atomic_number_of)
    neighbours = config["neighbour_species"] or all_elements
    tasks, skipped = _plan(data, config)
    for reason in skipped:
        warnings.warn(f"not trained: {reason}", SkippedTrainingWarning, stacklevel=2)
    if not tasks:
        raise TrainingDataError("nothing to fit: " + "; ".join(skipped))
    for element, prop, settings in tasks:  # descriptor settings a property cannot use fail before any fit
        try:
            build_descriptor(prop, neighbours, settings)
        except ValueError as error:
            raise ConfigError(f"{prop} of {element}: {error}") from None
    models = []
    bar = tqdm(tasks, desc="training", unit="model", disable=not progress)
    for element, prop, settings in bar:
        bar.set_postfix_str(f"{element} {prop}")
        selection = data.select(SOURCE_TENSOR[prop], element, structure_groups)
        models.append(fit_property_model(element, prop, data, selection, neighbours, settings))
    ood = {}
    for element in dict.fromkeys(element for element, _, _ in tasks):
        ood[element] = _ood_model(element, data, neighbours, species_config(config, element), models)
    sources = sorted(set(data.sources))
    files = [source for source in sources if Path(source).is_file()]
    metadata = {"provenance": make_provenance(files, sources=sources, n_structures=len(data), config=config)}
    if skipped:
        metadata["skipped"] = skipped
    model = NMRModel(models, ood, config["calibration"], config["isotopes"], metadata)
    # held-out residuals, the reference of the OOD percentile, over each element's selection.n_splits folds
    model.fit_ood_reference(data, n_splits={element: species_config(config, element)["selection"]["n_splits"]
                                            for element in ood})
    return model
