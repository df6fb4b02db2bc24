"""The featomic baseline of the gehlenite EFG benchmark (``accuracy_gehlenite_efg.py``):
featomic 0.6.7 λ-SOAP + linear ridge.

Features: ``EquivariantPowerSpectrum`` (λ = 2, σ = +1) of a ``SphericalExpansion`` with a
TensorProduct GTO basis, ``neighbors_to_properties=True``, computed per cell and split by
centre species. Model: one weight per feature shared by the five μ, scikit-learn
``Ridge(fit_intercept=False)`` on the stacked μ rows, features divided by their RMS
(``scale: "rms"``) or not (``"none"``), α relative to the mean squared (scaled) feature.
Targets go to featomic's λ = 2 components with its ``cartesian_to_spherical`` and
predictions back with ``spherical_to_cartesian`` (EFG in a.u.). ``gehlenite_checks.py``
checks the conversion round trip, the equivariance of the features and the search's
solver against scikit-learn.
"""
from __future__ import annotations

import gc
import time
from typing import Mapping, Sequence

import numpy as np

from ase_mlnmr.models.linear import equivariant_feature_scale

LAMBDA = 2


def featomic_cartesian_to_spherical(tensors: np.ndarray) -> np.ndarray:
    """λ = 2 components (n, 5) of (n, 3, 3) tensors with featomic's own conversion."""
    from featomic.clebsch_gordan import cartesian_to_spherical
    from metatensor import Labels, TensorBlock, TensorMap

    n = len(tensors)
    block = TensorBlock(
        values=np.ascontiguousarray(tensors, dtype=float)[..., None],
        samples=Labels(["sample"], np.arange(n).reshape(-1, 1)),
        components=[Labels(["xyz_1"], np.arange(3).reshape(-1, 1)), Labels(["xyz_2"], np.arange(3).reshape(-1, 1))],
        properties=Labels(["efg"], np.array([[0]])),
    )
    spherical = cartesian_to_spherical(TensorMap(Labels(["tensor"], np.array([[0]])), [block]),
                                       components=["xyz_1", "xyz_2"], keep_l_in_keys=True)
    return np.array(spherical.block(o3_lambda=2, o3_sigma=1).values[..., 0])


def featomic_spherical_to_cartesian(components: np.ndarray) -> np.ndarray:
    """(n, 3, 3) Cartesian tensors of λ = 2 components (n, 5) with featomic's conversion.

    featomic 0.6.7's ``spherical_to_cartesian`` needs the ``l_1``/``l_2`` key dimensions
    even for rank 2 (its docstring says they are re-created, the code checks the input
    names) and one more key dimension (else it builds a TensorMap with no key names).
    """
    from featomic.clebsch_gordan import spherical_to_cartesian
    from metatensor import Labels, TensorBlock, TensorMap

    n = len(components)
    block = TensorBlock(
        values=np.ascontiguousarray(components, dtype=float)[..., None],
        samples=Labels(["sample"], np.arange(n).reshape(-1, 1)),
        components=[Labels(["o3_mu"], np.arange(-2, 3).reshape(-1, 1))],
        properties=Labels(["efg"], np.array([[0]])),
    )
    keys = Labels(["o3_lambda", "o3_sigma", "l_2", "l_1", "tensor"], np.array([[2, 1, 1, 1, 0]]))
    cartesian = spherical_to_cartesian(TensorMap(keys, [block]))
    return np.array(cartesian.block(0).values[..., 0])


def featomic_basis() -> np.ndarray:
    """(5, 3, 3) through featomic's own spherical_to_cartesian (unit components)."""
    return featomic_spherical_to_cartesian(np.eye(5))


def featomic_hypers(setting: Mapping) -> dict:
    """featomic ``SphericalExpansion`` hypers of a setting: cutoff (Å), smoothing (Å or
    "cutoff"), width (Å), max_radial, max_angular, optional radial_scaling {r0 (Å), exponent}."""
    cutoff = float(setting["cutoff"])
    smoothing = cutoff if setting["smoothing"] == "cutoff" else float(setting["smoothing"])
    return {
        "cutoff": {"radius": cutoff, "smoothing": {"type": "ShiftedCosine", "width": smoothing}},
        "density": {"type": "Gaussian", "width": float(setting["width"]),  # centre atom weight: default 1
                    **({"scaling": {"type": "Willatt2018", "rate": 1.0, "scale": float(setting["radial_scaling"]["r0"]),
                                    "exponent": int(setting["radial_scaling"]["exponent"])}}
                       if setting.get("radial_scaling") else {})},
        "basis": {"type": "TensorProduct", "max_angular": int(setting["max_angular"]),
                  "radial": {"type": "Gto", "max_radial": int(setting["max_radial"])}},
    }


class FeatomicFeatures:
    """featomic λ = 2 equivariant power spectrum, one cell at a time, split by centre species."""

    def __init__(self, setting: Mapping, neighbours: Sequence[str]) -> None:
        import featomic
        import metatensor
        from ase.data import atomic_numbers
        from featomic.clebsch_gordan import EquivariantPowerSpectrum

        self.calculator = EquivariantPowerSpectrum(
            featomic.SphericalExpansion(**featomic_hypers(setting)),
            neighbor_types=sorted(atomic_numbers[s] for s in neighbours),
        )
        self.keys = metatensor.Labels(["o3_lambda", "o3_sigma"], np.array([[LAMBDA, 1]]))
        self.properties = None

    def cell(self, atoms) -> dict[str, np.ndarray]:
        """{species: (n_species_atoms, 5, p)} in the order of the atoms."""
        from ase.data import chemical_symbols

        tensor = self.calculator.compute(atoms, selected_keys=self.keys, neighbors_to_properties=True)
        out = {}
        for key, block in tensor.items():
            if self.properties is None:
                self.properties = block.properties
            elif block.properties != self.properties:
                raise RuntimeError("featomic property labels differ between blocks")
            atom = np.asarray(block.samples.column("atom"))
            order = np.argsort(atom)
            out[chemical_symbols[int(key["center_type"])]] = np.ascontiguousarray(np.asarray(block.values)[order])
        return out


def feature_scale(X: np.ndarray, scale: str) -> np.ndarray:
    """Scale of the baseline's feature rows X (rows, p): per-feature RMS for ``"rms"``, ones for ``"none"``."""
    return equivariant_feature_scale(X, "per_feature" if scale == "rms" else "none")


def fit_and_score_baseline(structures: Sequence, reference: Mapping[str, Sequence[np.ndarray]], chosen: Mapping,
                           features_of: Mapping[str, dict], train_cells: list[int], test_cells: list[int],
                           neighbours: Sequence[str]) -> dict:
    """Fit the baseline on ``train_cells`` and score it on ``test_cells`` with ``efg_metrics``.

    ``reference[species][cell]`` EFG tensors (a.u.), ``chosen[species]`` {"setting", "alpha"},
    ``features_of[species]`` the feature part of its setting (species sharing it share the
    features); timings in seconds.
    """
    from sklearn.linear_model import Ridge

    from ase_mlnmr.training.evaluation import PairedTensors, efg_metrics
    from ase_mlnmr.training.search_budget import canonical_json

    groups: dict[str, tuple[dict, list[str]]] = {}
    for sp, features in features_of.items():
        groups.setdefault(canonical_json(features), (features, []))[1].append(sp)
    seconds = {"features_train": 0.0, "fit": 0.0, "features_test": 0.0, "predict": 0.0}
    elements, expected, predicted, index = [], [], [], []
    for features, species in groups.values():
        calculator = FeatomicFeatures(features, neighbours)
        t0 = time.perf_counter()
        train_features = [calculator.cell(structures[c]) for c in train_cells]
        seconds["features_train"] += time.perf_counter() - t0
        models = {}
        for sp in species:
            t0 = time.perf_counter()
            X = np.concatenate([cf[sp] for cf in train_features])
            X = X.reshape(-1, X.shape[-1])
            y = featomic_cartesian_to_spherical(np.concatenate([reference[sp][c] for c in train_cells])).reshape(-1)
            s = feature_scale(X, chosen[sp]["setting"]["scale"])
            Xs = X / s
            alpha = chosen[sp]["alpha"] * float(np.mean(Xs**2))  # relative to the mean squared feature
            models[sp] = (Ridge(alpha=alpha, fit_intercept=False).fit(Xs, y), s)
            seconds["fit"] += time.perf_counter() - t0
            del X, Xs
        del train_features
        gc.collect()
        for c in test_cells:
            t0 = time.perf_counter()
            cell = calculator.cell(structures[c])
            seconds["features_test"] += time.perf_counter() - t0
            for sp in species:
                t0 = time.perf_counter()
                ridge, s = models[sp]
                X = cell[sp]
                spherical = ridge.predict(X.reshape(-1, X.shape[-1]) / s).reshape(len(X), 2 * LAMBDA + 1)
                cartesian = featomic_spherical_to_cartesian(spherical)
                seconds["predict"] += time.perf_counter() - t0
                elements.append(np.full(len(X), sp))
                expected.append(reference[sp][c])
                predicted.append(cartesian)
                index.append(np.full(len(X), c))
    pairs = PairedTensors("efg", np.concatenate(elements), np.concatenate(expected), np.concatenate(predicted),
                          np.concatenate(index))
    seconds["train_total"] = seconds["features_train"] + seconds["fit"]
    seconds["predict_total"] = seconds["features_test"] + seconds["predict"]
    return {"metrics": efg_metrics(pairs), "seconds": seconds, "n_train_cells": len(train_cells),
            "n_test_atoms": int(len(pairs.elements)),
            "hypers": {sp: featomic_hypers(features_of[sp]) for sp in features_of}}
