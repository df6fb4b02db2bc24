"""Slow NumPy reference of everything the compiled evaluator does after the expansion.

Input: the core's expansion coefficients c_{anlm} (``descriptor.spherical_expansion``);
from there on every step is written out independently of ``_evaluator.pyx``: power
spectrum and λ-SOAP features (``numpy_reference``, sympy Clebsch–Gordan), weights times
features, the Nyström kernel from explicit differences, the OOD residual from a
triangular solve on the leading pivots, its percentile, the Cartesian assembly and the
NMR parameters through ``ase_mlnmr.nmr`` (efg.py / shielding.py conventions).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from ase_mlnmr.core.spherical_tensors import l2_to_symmetric_traceless, vector_to_antisymmetric
from ase_mlnmr.models.nystrom import NystromKernelRidge
from ase_mlnmr.nmr.efg import quadrupolar_parameters
from ase_mlnmr.nmr.shielding import haeberlen

from numpy_reference import lambda_features, power_spectrum


def padded_coefficients(descriptor, atoms, centres) -> np.ndarray:
    """c[i, s, n, l, m + l_max] (zero-padded in m) of the centres, from the core's expansion."""
    blocks = descriptor.spherical_expansion(atoms, centres)
    l_max = descriptor.l_max
    out = np.zeros((len(centres), descriptor.n_channels, descriptor.n_max, l_max + 1, 2 * l_max + 1))
    for l, block in enumerate(blocks):
        out[:, :, :, l, l_max - l: l_max + l + 1] = block
    return out


def kernel_values(regressor: NystromKernelRidge, features: np.ndarray) -> np.ndarray:
    """k(x, z) for every row and inducing point, from explicit differences / dot products."""
    X = np.asarray(features, dtype=float)
    if regressor.kernel == "dot_product":
        X = X / regressor.x_scale_
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = np.where(norms > 0, X / np.where(norms > 0, norms, 1.0), 0.0)
        Z = regressor.inducing_points_
        K = np.clip(X @ Z.T, -1.0, 1.0) ** regressor.zeta
        zero_x = np.linalg.norm(X, axis=1) == 0
        zero_z = np.linalg.norm(Z, axis=1) == 0
        K[np.ix_(zero_x, zero_z)] = 1.0
        return K
    if regressor.normalize_features:
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = X / np.where(norms > 0, norms, 1.0)
    X = (X - regressor.x_mean_) / regressor.x_scale_
    d2 = ((X[:, None, :] - regressor.inducing_points_[None, :, :]) ** 2).sum(axis=-1)
    return np.exp(-d2 / (2.0 * regressor.length_scale**2))


def iso_values(regressor, features: np.ndarray) -> np.ndarray:
    """σiso (ppm) of a Nyström or linear model."""
    if isinstance(regressor, NystromKernelRidge):
        return kernel_values(regressor, features) @ regressor.weights_[:, 0] * regressor.y_std_[0] + regressor.y_mean_[0]
    scaled = (features - regressor.x_mean_) / regressor.x_scale_
    return scaled @ regressor.scaled_weights_[:, 0] * regressor.y_scale_[0] + regressor.y_mean_[0]


def residuals(regressor: NystromKernelRidge, features: np.ndarray, rank: int) -> np.ndarray:
    """1 − |L_p⁻¹ k_p|² over the first ``rank`` pivots, clipped to [0, 1]."""
    K = kernel_values(regressor, features)[:, :rank]
    phi = solve_triangular(regressor.chol_zz_[:rank, :rank], K.T, lower=True)
    return np.clip(1.0 - (phi**2).sum(axis=0), 0.0, 1.0)


def reference_outputs(model, atoms, isotopes=None, coefficients=padded_coefficients) -> dict[str, np.ndarray]:
    """Every evaluator output per atom (NaN where absent), unknown elements skipped.

    ``coefficients(descriptor, atoms, centres)`` gives c[i, s, n, l, m + l_max]: by default
    the core's expansion; an independent NumPy expansion makes the reference end to end."""
    n = len(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    out = {name: np.full((n,) + shape, np.nan) for name, shape in
           (("ms", (3, 3)), ("ms_iso", ()), ("delta_iso", ()), ("ms_l2", (5,)), ("ms_zeta", ()), ("ms_eta", ()),
            ("efg", (3, 3)), ("efg_l2", (5,)), ("vzz", ()), ("eta_q", ()), ("cq", ()), ("ood", ()),
            ("ood_residual", ()))}
    merged = dict(model.isotopes)
    merged.update(isotopes or {})
    for element in model.elements:
        centres = np.flatnonzero(symbols == element)
        if len(centres) == 0:
            continue
        props = model.properties_of(element)
        parts = {}
        for prop in props:
            component = model.models[(element, prop)]
            c = coefficients(component.descriptor, atoms, centres)
            if prop == "ms_iso":
                features = np.array([power_spectrum(ci) for ci in c])
                parts[prop] = iso_values(component.regressor, features)
            else:
                d = component.descriptor
                features = np.array([lambda_features(ci, d.lam, d.pairs, d.two_body) for ci in c])
                parts[prop] = features @ component.regressor.coef_
        if "ms_aniso" in parts:
            sigma2 = l2_to_symmetric_traceless(parts["ms_aniso"])
            h = haeberlen(sigma2)
            out["ms_l2"][centres] = parts["ms_aniso"]
            out["ms_zeta"][centres], out["ms_eta"][centres] = h.zeta, h.eta
        if "ms_iso" in parts:
            iso = parts["ms_iso"]
            ms = iso[:, None, None] * np.eye(3)
            if "ms_aniso" in parts:
                ms = ms + l2_to_symmetric_traceless(parts["ms_aniso"])
            else:
                out["ms_zeta"][centres], out["ms_eta"][centres] = 0.0, 0.0
            if "ms_antisym" in parts:
                ms = ms + vector_to_antisymmetric(parts["ms_antisym"])
            out["ms"][centres], out["ms_iso"][centres] = ms, iso
            if element in model.calibration:
                cal = model.calibration[element]
                out["delta_iso"][centres] = -cal["slope"] * (iso - cal["sigma_ref"])
        if "efg" in parts:
            efg = l2_to_symmetric_traceless(parts["efg"])
            q = quadrupolar_parameters(efg, element, units="au", isotopes=merged, missing="nan")
            out["efg"][centres], out["efg_l2"][centres] = efg, parts["efg"]
            out["vzz"][centres], out["eta_q"][centres], out["cq"][centres] = q.vzz, q.eta, q.cq
        if element in model.ood_models:
            descriptor, regressor = model.ood_models[element]
            c = coefficients(descriptor, atoms, centres)
            features = np.array([power_spectrum(ci) for ci in c])
            rank = model.ood_rank.get(element, regressor.n_inducing_)
            r = residuals(regressor, features, rank)
            reference = model.ood_reference.get(element)
            score = r if reference is None else np.searchsorted(reference, r, side="right") / len(reference)
            bare = np.abs(c).sum(axis=(1, 2, 3, 4)) == 0   # no neighbour inside the OOD r_cut
            out["ood_residual"][centres] = np.where(bare, 1.0, r)
            out["ood"][centres] = np.where(bare, 1.0, score)
    return out
