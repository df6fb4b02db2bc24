"""NMR tensor models per centre element: training, prediction, model files.

For each centre element the model holds up to four property models:

* ``ms_iso`` — σiso (ppm): Gaussian kernel ridge with Nyström inducing points from
  pivoted Cholesky (LSSVR, Charpentier 2025 eq. 4) on the SOAP power spectrum, or plain
  linear ridge (``regressor: "linear"``);
* ``ms_aniso`` — σ(2), the symmetric traceless shielding part (ppm): λ = 2 equivariant
  ridge on λ-SOAP features;
* ``ms_antisym`` — σ(1), the antisymmetric part (ppm): λ = 1 pseudovector features;
* ``efg`` — V (a.u.): λ = 2 equivariant ridge (eq. 5), exactly equivariant (no intercept,
  no per-component centring), evaluated through the contracted path of the core.

Plus an out-of-domain signal per atom: the Nyström residual r(x) = 1 − k_xZ K_ZZ⁻¹ k_Zx
on the power spectrum (0 on training data, → 1 far from it), and an optional per-element
shift calibration δiso = −a(σiso − σref).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from .dataset import TensorDataset
from .descriptors import LambdaSOAP, SOAP, atomic_number_of, random_species_mixing
from .models.linear import EquivariantRidge, RidgeRegression, equivariant_feature_scale
from .models.model_file import ModelFileError, load_model, make_provenance, save_model
from .models.nystrom import NystromKernelRidge
from .spherical_tensors import (
    antisymmetric_to_vector,
    isotropic_part,
    l2_to_symmetric_traceless,
    symmetric_traceless_to_l2,
    vector_to_antisymmetric,
)

__all__ = ["PROPERTIES", "PropertyModel", "NMRModel", "NMRPrediction", "DEFAULT_CONFIG", "UnknownSpeciesError",
           "regression_targets"]

#: Property models a centre element can have, with the tensor each is fitted to.
PROPERTIES = ("ms_iso", "ms_aniso", "ms_antisym", "efg")
_SOURCE_TENSOR = {"ms_iso": "ms", "ms_aniso": "ms", "ms_antisym": "ms", "efg": "efg"}

DEFAULT_CONFIG: dict[str, Any] = {
    "descriptor": {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.4},
    "ms_iso": {"regressor": "nystrom", "kernel": "gaussian", "n_inducing": 2000, "length_scale_factor": 1.0, "ridge": 1e-6},
    "ms_aniso": {"alpha": "auto", "feature_scaling": "auto", "two_body": True},
    "ms_antisym": {"alpha": "auto", "feature_scaling": "auto"},
    "efg": {"alpha": "auto", "feature_scaling": "auto", "two_body": True},
    "ood": {"n_inducing": 500, "length_scale_factor": 1.0},
}


class UnknownSpeciesError(ValueError):
    """Atoms of an element the model has no model for."""


def regression_targets(prop: str, tensors: np.ndarray) -> np.ndarray:
    """What the model of ``prop`` regresses, from (n, 3, 3) tensors: σiso (n,) for
    ``ms_iso``; the five λ = 2 components (n, 5) of the symmetric part for ``ms_aniso`` /
    ``efg`` (the trace drops out); the pseudovector (n, 3) of the antisymmetric part for
    ``ms_antisym``. Units are those of the tensors."""
    if prop == "ms_iso":
        return isotropic_part(tensors)
    if prop in ("ms_aniso", "efg"):
        symmetric = 0.5 * (tensors + np.swapaxes(tensors, -1, -2))
        return symmetric_traceless_to_l2(symmetric)
    if prop == "ms_antisym":
        return antisymmetric_to_vector(tensors)
    raise ValueError(f"unknown property {prop!r}; expected one of {PROPERTIES}")


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


@dataclass
class PropertyModel:
    """One property of one centre element: a descriptor and a fitted regressor."""

    element: str
    prop: str
    descriptor: SOAP | LambdaSOAP
    regressor: NystromKernelRidge | RidgeRegression | EquivariantRidge
    _folded: tuple[np.ndarray, np.ndarray | None] | None = field(default=None, repr=False)

    @property
    def is_equivariant(self) -> bool:
        return isinstance(self.regressor, EquivariantRidge)

    def features(self, atoms: Atoms, centres: np.ndarray) -> np.ndarray:
        return self.descriptor.create(atoms, centres=centres)

    def predict(self, atoms: Atoms, centres: np.ndarray) -> np.ndarray:
        """σiso (n,) in ppm, or spherical components (n, 2λ+1) (ppm or a.u.)."""
        if len(centres) == 0:
            return np.zeros((0,) if not self.is_equivariant else (0, self.regressor.n_components))
        if self.is_equivariant:
            if self._folded is None:
                self._folded = self.descriptor.fold_weights(self.regressor.coef_)
            nl, species = self.descriptor.neighbour_list(atoms, centres)
            return self.descriptor.contract_folded(nl.offsets, nl.vectors, species, *self._folded)
        return self.regressor.predict(self.features(atoms, centres))

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, params = self.regressor.to_arrays()
        meta = {
            "element": self.element,
            "property": self.prop,
            "descriptor": self.descriptor.get_parameters(),
            "descriptor_kind": "lambda_soap" if isinstance(self.descriptor, LambdaSOAP) else "soap",
            "regressor": type(self.regressor).__name__,
            "regressor_params": params,
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "PropertyModel":
        regressors = {"NystromKernelRidge": NystromKernelRidge, "RidgeRegression": RidgeRegression,
                      "EquivariantRidge": EquivariantRidge}
        name = meta.get("regressor")
        if name not in regressors:
            raise ModelFileError(f"model file names an unknown regressor {name!r}")
        parameters = dict(meta["descriptor"])
        mixing = parameters.pop("species_mixing", None)
        mixing = None if mixing is None else np.asarray(mixing, dtype=float)
        if meta.get("descriptor_kind") == "lambda_soap":
            descriptor = LambdaSOAP(species_mixing=mixing, **parameters)
        else:
            descriptor = SOAP(species_mixing=mixing, **parameters)
        regressor = regressors[name].from_arrays(dict(arrays), meta["regressor_params"])
        return cls(element=meta["element"], prop=meta["property"], descriptor=descriptor, regressor=regressor)


@dataclass
class NMRPrediction:
    """Per-atom predictions for one structure; entries of atoms not predicted are NaN.

    ``ms`` (N, 3, 3) ppm, ``efg`` (N, 3, 3) a.u., ``ms_iso`` (N,) ppm, ``delta_iso`` (N,)
    ppm (where calibrated), ``ood`` (N,) in [0, 1]; the ``*_mask`` arrays say which atoms
    carry each quantity.
    """

    ms: np.ndarray
    efg: np.ndarray
    ms_iso: np.ndarray
    delta_iso: np.ndarray
    ood: np.ndarray
    ms_mask: np.ndarray
    efg_mask: np.ndarray
    delta_mask: np.ndarray
    ood_mask: np.ndarray


class NMRModel:
    """Property models per centre element, calibration, isotopes; save/load as one file.

    Parameters
    ----------
    property_models : the fitted :class:`PropertyModel` objects
    ood_models : per element, a (SOAP, NystromKernelRidge) pair giving the Nyström residual
    calibration : per element ``{"slope": a, "sigma_ref": σref (ppm)}`` for δiso = −a(σiso − σref)
    isotopes : per element, the quadrupolar isotope its CQ refers to (default: the usual one)
    metadata : provenance, units, cross-validation metrics (stored in the model file)
    """

    def __init__(
        self,
        property_models: Iterable[PropertyModel],
        ood_models: Mapping[str, tuple[SOAP, NystromKernelRidge]] | None = None,
        calibration: Mapping[str, Mapping[str, float]] | None = None,
        isotopes: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.models: dict[tuple[str, str], PropertyModel] = {}
        for model in property_models:
            if model.prop not in PROPERTIES:
                raise ValueError(f"unknown property {model.prop!r}")
            self.models[(model.element, model.prop)] = model
        self.ood_models = dict(ood_models or {})
        self.calibration = {e: {"slope": float(c["slope"]), "sigma_ref": float(c["sigma_ref"])}
                            for e, c in (calibration or {}).items()}
        for element, entry in self.calibration.items():
            if not (np.isfinite(entry["slope"]) and np.isfinite(entry["sigma_ref"])):
                raise ValueError(f"calibration of {element} must be finite numbers, got {entry}")
        self.isotopes = dict(isotopes or {})
        self.metadata = dict(metadata or {})

    # ------------------------------------------------------------------ queries
    @property
    def elements(self) -> list[str]:
        """Centre elements with at least one property model."""
        return sorted({element for element, _ in self.models})

    def properties_of(self, element: str) -> list[str]:
        return [prop for prop in PROPERTIES if (element, prop) in self.models]

    def has(self, prop: str) -> bool:
        return any(p == prop for _, p in self.models)

    # --------------------------------------------------------------- prediction
    def predict(self, atoms: Atoms, unknown_species: str = "raise") -> NMRPrediction:
        """Predict tensors for every atom of a model element.

        ``unknown_species='raise'`` (default) raises :class:`UnknownSpeciesError` for atoms
        of elements the model has no model for; ``'skip'`` leaves them unpredicted (NaN,
        mask False), e.g. Ca in gehlenite with an Al/O/Si model.
        """
        if unknown_species not in ("raise", "skip"):
            raise ValueError(f"unknown_species must be 'raise' or 'skip', got {unknown_species!r}")
        n_atoms = len(atoms)
        if n_atoms == 0:
            raise ValueError("empty structure: no atoms")
        symbols = np.array(atoms.get_chemical_symbols())
        unknown = sorted({str(s) for s in symbols} - set(self.elements))
        if unknown and unknown_species == "raise":
            raise UnknownSpeciesError(
                f"no model for species {unknown} (model elements: {self.elements}); "
                "pass unknown_species='skip' to leave them unpredicted"
            )
        nan_tensor = np.full((n_atoms, 3, 3), np.nan)
        result = NMRPrediction(
            ms=nan_tensor.copy(), efg=nan_tensor.copy(), ms_iso=np.full(n_atoms, np.nan),
            delta_iso=np.full(n_atoms, np.nan), ood=np.full(n_atoms, np.nan),
            ms_mask=np.zeros(n_atoms, bool), efg_mask=np.zeros(n_atoms, bool),
            delta_mask=np.zeros(n_atoms, bool), ood_mask=np.zeros(n_atoms, bool),
        )
        for element in self.elements:
            centres = np.flatnonzero(symbols == element)
            if len(centres) == 0:
                continue
            props = self.properties_of(element)
            if "ms_iso" in props:
                iso = self.models[(element, "ms_iso")].predict(atoms, centres)
                ms = iso[:, None, None] * np.eye(3)
                if "ms_aniso" in props:
                    ms = ms + l2_to_symmetric_traceless(self.models[(element, "ms_aniso")].predict(atoms, centres))
                if "ms_antisym" in props:
                    ms = ms + vector_to_antisymmetric(self.models[(element, "ms_antisym")].predict(atoms, centres))
                result.ms[centres] = ms
                result.ms_iso[centres] = iso
                result.ms_mask[centres] = True
                if element in self.calibration:
                    cal = self.calibration[element]
                    result.delta_iso[centres] = -cal["slope"] * (iso - cal["sigma_ref"])
                    result.delta_mask[centres] = True
            if "efg" in props:
                result.efg[centres] = l2_to_symmetric_traceless(self.models[(element, "efg")].predict(atoms, centres))
                result.efg_mask[centres] = True
            if element in self.ood_models:
                descriptor, nystrom = self.ood_models[element]
                result.ood[centres] = nystrom.out_of_domain(descriptor.create(atoms, centres=centres))
                result.ood_mask[centres] = True
        return result

    # ------------------------------------------------------------------- files
    def save(self, path: str | Path, extra_metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the model as one self-describing ``.npz`` (no pickle, hashed, versioned)."""
        arrays: dict[str, np.ndarray] = {}
        components = []
        for k, ((element, prop), model) in enumerate(sorted(self.models.items())):
            model_arrays, meta = model.to_arrays()
            prefix = f"m{k}__"
            arrays.update({prefix + name: value for name, value in model_arrays.items()})
            components.append({"prefix": prefix, **meta})
        ood = []
        for k, (element, (descriptor, nystrom)) in enumerate(sorted(self.ood_models.items())):
            model_arrays, params = nystrom.to_arrays()
            prefix = f"ood{k}__"
            arrays.update({prefix + name: value for name, value in model_arrays.items()})
            ood.append({"prefix": prefix, "element": element, "descriptor": descriptor.get_parameters(),
                        "regressor_params": params})
        metadata = dict(self.metadata)
        metadata.update(extra_metadata or {})
        metadata.update(
            kind="ase_mlnmr.NMRModel",
            units={"ms": "ppm", "efg": "au"},
            species=self.elements,
            components=components,
            ood_components=ood,
            calibration=self.calibration,
            isotopes=self.isotopes,
        )
        return save_model(path, arrays, metadata)

    @classmethod
    def load(cls, path: str | Path) -> "NMRModel":
        """Read a model file; :class:`ModelFileError` names what is wrong with a bad one."""
        arrays, metadata = load_model(path)
        if metadata.get("kind") != "ase_mlnmr.NMRModel":
            raise ModelFileError(f"{path}: not an NMRModel file (kind {metadata.get('kind')!r})")
        try:
            models = []
            for component in metadata["components"]:
                prefix = component["prefix"]
                own = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
                models.append(PropertyModel.from_arrays(own, component))
            ood = {}
            for component in metadata.get("ood_components", []):
                prefix = component["prefix"]
                own = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
                parameters = dict(component["descriptor"])
                mixing = parameters.pop("species_mixing", None)
                descriptor = SOAP(species_mixing=None if mixing is None else np.asarray(mixing), **parameters)
                ood[component["element"]] = (descriptor, NystromKernelRidge.from_arrays(own, component["regressor_params"]))
        except (KeyError, TypeError) as error:
            raise ModelFileError(f"{path}: incomplete model description ({error!r})") from error
        keep = {k: v for k, v in metadata.items()
                if k not in ("components", "ood_components", "calibration", "isotopes")}
        return cls(models, ood, metadata.get("calibration"), metadata.get("isotopes"), keep)

    # ----------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        dataset: TensorDataset,
        config: Mapping[str, Any] | None = None,
        progress: bool = True,
        structure_indices: Sequence[int] | None = None,
    ) -> "NMRModel":
        """Fit property models for the elements and properties in ``config``.

        ``config`` keys (all optional, merged over :data:`DEFAULT_CONFIG`):
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
            available = [p for p in PROPERTIES if len(data.select(_SOURCE_TENSOR[p], element))]
            if data.symmetrised_shielding and "ms_antisym" in available:
                available.remove("ms_antisym")  # σ(1) was discarded when reading
            wanted = element_config.get("properties") or [p for p in available if p != "ms_antisym"]
            for prop in wanted:
                if prop not in PROPERTIES:
                    raise ValueError(f"unknown property {prop!r} for {element}; expected one of {PROPERTIES}")
                if prop not in available:
                    raise ValueError(f"no {_SOURCE_TENSOR[prop]} tensors of {element} in the training data for {prop}")
                tasks.append((element, prop, element_config))
            tasks.append((element, "ood", element_config))
        models, ood = [], {}
        bar = tqdm(tasks, desc="training", unit="model", disable=not progress)
        for element, prop, element_config in bar:
            bar.set_postfix_str(f"{element} {prop}")
            if prop == "ood":
                source = "ms" if len(data.select("ms", element)) else "efg"
            else:
                source = _SOURCE_TENSOR[prop]
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
        return cls(models, ood, config.get("calibration"), config.get("isotopes"), metadata)


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (override wins); used for per-species settings."""
    merged = json.loads(json.dumps(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = json.loads(json.dumps(value))
    return merged


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


def descriptor_parameters(neighbours: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """Descriptor keyword arguments from a config; ``mixing_channels: K`` (with optional
    ``mixing_seed``) compresses the neighbour species into K random orthonormal channels."""
    parameters = dict(config["descriptor"])
    channels = parameters.pop("mixing_channels", None)
    seed = int(parameters.pop("mixing_seed", 0))
    if channels is not None and int(channels) < len(neighbours):
        parameters["species_mixing"] = random_species_mixing(len(neighbours), int(channels), seed)
    return parameters


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
    from .models.validation import fold_assignment

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
