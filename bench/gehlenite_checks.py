"""Start-up self-checks of the gehlenite EFG benchmark (``accuracy_gehlenite_efg.py``), on a
few cells, seconds: featomic's Cartesian ↔ spherical round trip and basis, equivariance of
both feature sets under a rotation, our two-body columns first, the search's ridge solver
(:class:`ase_mlnmr.training.nested_ridge.PairedFoldRidge`) against ``EquivariantRidge``
(both feature scalings) and ``NMRModel.predict`` (contracted path), the baseline's against
scikit-learn. Every value is an error that must stay below 1e-6.
"""
from __future__ import annotations

from types import ModuleType
from typing import Callable, Mapping, Sequence

import numpy as np

from featomic_baseline import (FeatomicFeatures, feature_scale, featomic_basis, featomic_cartesian_to_spherical,
                               featomic_spherical_to_cartesian)


def self_checks(protocol: ModuleType, context, grid: dict) -> dict[str, float]:
    """Basis conventions and solver equivalences on a few cells (seconds): both feature sets
    rotate with the cell; our two-body columns come first; the search's solver equals
    EquivariantRidge (both scalings) and NMRModel.predict; the baseline's equals scikit-learn.
    ``protocol``: the benchmark script's module (its settings, descriptor and config);
    ``context`` its data (:class:`Context`); ``grid`` the grid whose starts are checked."""
    from ase_mlnmr.models.linear import EquivariantRidge
    from ase_mlnmr.nmr_model import NMRModel

    sp, train_cells, test_cells, alpha = "Si", [1, 2, 3], [0, 5], 1e-3
    folds = np.array([0 if c in train_cells else 1 if c in test_cells else 2 for c in range(context.n_cells)])
    structures = context.dataset.structures
    tensors = np.concatenate([context.reference[s][0] for s in protocol.SPECIES])
    baseline_features = protocol.split_setting("baseline", grid["baseline"]["start"])[0]
    checks = baseline_self_checks(structures, tensors, context.targets["baseline"][sp], baseline_features,
                                  protocol.NEIGHBOURS, sp, folds, train_cells, alpha)
    features = protocol.split_setting("ours", grid["ours"]["start"])[0]
    descriptor = protocol.ours_descriptor(features)
    checks["ours_features_equivariance_rel_err"] = rotation_error(
        lambda a: descriptor.create(a, centres=protocol.species_centres(a, "Al")), structures[0], context.basis["ours"])
    X = [descriptor.create(a, centres=protocol.species_centres(a, sp)) for a in structures]
    columns = protocol.ridge_of_variant(features, {"two_body": False})[0]
    checks["ours_two_body_columns_first_max_abs"] = float(np.abs(X[0][:, :, columns] - protocol.ours_descriptor(
        features, two_body=False).create(structures[0], centres=protocol.species_centres(structures[0], sp))).max())
    problem = context.problem("ours", sp, X, folds)
    Xt = np.concatenate([X[c] for c in train_cells])
    yt = np.concatenate([context.targets["ours"][sp][c] for c in train_cells])
    for scaling, name in (("per_feature", "ours_solver"), ("global", "ours_global_scaling_solver")):
        coef = problem.weights([0], slice(0, None), scaling, alpha)
        ridge = EquivariantRidge(lam=2, alpha=alpha, feature_scaling=scaling).fit(Xt, yt)
        checks[f"{name}_vs_EquivariantRidge_rel_err"] = float(np.abs(coef - ridge.coef_).max() / np.abs(ridge.coef_).max())
    config = protocol.ours_config({sp: {"setting": dict(grid["ours"]["start"]), "alpha": alpha}})
    model = NMRModel.train(context.dataset, config, progress=False, structure_indices=train_cells)
    coef = problem.weights([0], slice(0, None), "per_feature", alpha)
    checks["ours_solver_vs_NMRModel_predict_max_abs_au"] = max(float(np.abs(
        model.predict(structures[c], unknown_species="skip").efg[protocol.species_centres(structures[c], sp)]
        - np.einsum("nm,mij->nij", X[c] @ coef, context.basis["ours"])).max()) for c in test_cells)
    return checks


def rotation_error(features: Callable[[object], np.ndarray], atoms, basis: np.ndarray, seed: int = 7) -> float:
    """Equivariance of λ = 2 features (n, 5, p) under a random rotation R of ``atoms``: the
    Cartesian tensors Σ_μ x_μ B_μ of the rotated cell against R T Rᵀ (first 200 features),
    max relative error."""
    from scipy.spatial.transform import Rotation

    rotation = Rotation.random(random_state=seed).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    cart = np.einsum("nmf,mij->nfij", features(atoms)[:, :, :200], basis)
    cart_rot = np.einsum("nmf,mij->nfij", features(rotated)[:, :, :200], basis)
    expected = np.einsum("ij,nfjk,lk->nfil", rotation, cart, rotation)
    return float(np.abs(cart_rot - expected).max() / np.abs(expected).max())


def baseline_self_checks(structures: Sequence, tensors: np.ndarray, cell_targets: Sequence[np.ndarray],
                         setting: Mapping, neighbours: Sequence[str], species: str, folds: np.ndarray,
                         train_cells: list[int], alpha: float) -> dict[str, float]:
    """Basis and solver checks of the baseline (all ≤ 1e-6 when right).

    ``tensors`` (n, 3, 3) EFG (a.u.) for the round trip; ``cell_targets[c]`` featomic λ = 2
    components of ``species`` in cell c; ``folds`` a fold id per cell, fold 0 = ``train_cells``.
    """
    from sklearn.linear_model import Ridge

    from ase_mlnmr.nmr_model import regression_targets
    from ase_mlnmr.training.nested_ridge import PairedFoldRidge

    checks = {}
    basis = featomic_basis()
    spherical = featomic_cartesian_to_spherical(tensors)
    checks["featomic_round_trip_max_abs_au"] = float(np.abs(featomic_spherical_to_cartesian(spherical) - tensors).max())
    checks["featomic_basis_matrix_vs_tensormap_max_abs"] = float(np.abs(
        np.einsum("nm,mij->nij", spherical, basis) - featomic_spherical_to_cartesian(spherical)).max())
    checks["featomic_vs_ours_l2_components_max_abs"] = float(np.abs(spherical - regression_targets("efg", tensors)).max())
    calculator = FeatomicFeatures(setting, neighbours)
    checks["baseline_features_equivariance_rel_err"] = rotation_error(lambda a: calculator.cell(a)["Al"],
                                                                      structures[0], basis)
    F = [calculator.cell(atoms)[species] for atoms in structures]
    atom_folds = np.concatenate([np.full(len(x), folds[c]) for c, x in enumerate(F)])
    problem = PairedFoldRidge(np.concatenate(F), np.concatenate(cell_targets), atom_folds,
                              np.zeros((len(atom_folds), 3, 3)), basis)
    Xt = np.concatenate([F[c] for c in train_cells]).reshape(-1, F[0].shape[-1])
    yt = np.concatenate([cell_targets[c] for c in train_cells]).reshape(-1)
    for scale, feature_scaling in (("none", "global"), ("rms", "per_feature")):
        coef = problem.weights([0], slice(0, None), feature_scaling, alpha)
        s = feature_scale(Xt, scale)
        sk = Ridge(alpha=alpha * float(np.mean((Xt / s) ** 2)), fit_intercept=False).fit(Xt / s, yt).coef_ / s
        checks[f"baseline_solver_vs_sklearn_{scale}_rel_err"] = float(np.abs(coef - sk).max() / np.abs(sk).max())
    return checks
