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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from ase import Atoms

from .training.dataset import TensorDataset
from .descriptors import LambdaSOAP, SOAP
from .models.linear import EquivariantRidge, RidgeRegression
from .models.model_file import ModelFileError, check_loaded_component, load_model, save_model
from .models.nystrom import NystromKernelRidge
from .core.spherical_tensors import (
    antisymmetric_to_vector,
    isotropic_part,
    l2_to_symmetric_traceless,
    symmetric_traceless_to_l2,
    vector_to_antisymmetric,
)

__all__ = ["PROPERTIES", "SOURCE_TENSOR", "PropertyModel", "NMRModel", "NMRPrediction", "UnknownSpeciesError",
           "regression_targets"]

#: Property models a centre element can have, with the tensor each is fitted to.
PROPERTIES = ("ms_iso", "ms_aniso", "ms_antisym", "efg")
SOURCE_TENSOR = {"ms_iso": "ms", "ms_aniso": "ms", "ms_antisym": "ms", "efg": "efg"}

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
                check_loaded_component(path, f"{models[-1].element}/{models[-1].prop}", models[-1].descriptor,
                                       models[-1].regressor)
            ood = {}
            for component in metadata.get("ood_components", []):
                prefix = component["prefix"]
                own = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
                parameters = dict(component["descriptor"])
                mixing = parameters.pop("species_mixing", None)
                descriptor = SOAP(species_mixing=None if mixing is None else np.asarray(mixing), **parameters)
                ood[component["element"]] = (descriptor, NystromKernelRidge.from_arrays(own, component["regressor_params"]))
                check_loaded_component(path, f"{component['element']}/ood", descriptor, ood[component["element"]][1],
                                       out_of_domain=True)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ModelFileError(f"{path}: incomplete or inconsistent model description ({error!r})") from error
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
        """Fit a model on ``dataset``; see :func:`ase_mlnmr.training.fitting.train_model`."""
        from .training.fitting import train_model

        return train_model(dataset, config, progress=progress, structure_indices=structure_indices)
