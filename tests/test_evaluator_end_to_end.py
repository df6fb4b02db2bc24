"""The whole prediction, end to end, against NumPy alone: the expansion coefficients come
from ``numpy_reference.expansion`` (quadrature of the radial integrals, explicit real
harmonics) instead of the core, then ``evaluator_reference`` does the rest. Tolerance: the
one the descriptor tests use for features against the same reference (rtol 1e-7)."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from ase_mlnmr.descriptors import LambdaSOAP, SOAP
from ase_mlnmr.models.linear import EquivariantRidge
from ase_mlnmr.models.nystrom import NystromKernelRidge
from ase_mlnmr.nmr_model import NMRModel, PropertyModel

import numpy_reference
from evaluator_reference import reference_outputs

SPECIES = ["Si", "O", "Na"]
SMALL = dict(n_max=3, l_max=3, sigma=0.5)


def numpy_coefficients(descriptor, atoms: Atoms, centres) -> np.ndarray:
    """c[i, s, n, l, m + l_max] of an open cluster from the NumPy reference expansion."""
    index = np.array([descriptor.species.index(s) for s in atoms.get_chemical_symbols()])
    scaling = descriptor.get_parameters()["radial_scaling"]
    scaling = None if scaling is None else (scaling["r0"], scaling["exponent"])
    out = []
    for centre in centres:
        vectors = np.delete(atoms.positions - atoms.positions[centre], centre, axis=0)
        out.append(numpy_reference.expansion(vectors, np.delete(index, centre), len(descriptor.species),
                                             descriptor.r_cut, descriptor.sigma, descriptor.n_max,
                                             descriptor.l_max, scaling=scaling))
    return np.array(out)


def _model() -> NMRModel:
    """Si: Gaussian Nyström σiso (shared with OOD, calibrated), σ(2), EFG with radial
    scaling and its own r_cut; O: dot-product σiso (ζ = 2), EFG (17O); random targets."""
    rng = np.random.default_rng(7)
    train = [_cluster(seed) for seed in range(10, 22)]
    models = []

    def add(element, prop, descriptor, regressor, n_out):
        features = np.concatenate([descriptor.create(a, centres=element) for a in train])
        shape = (len(features),) if n_out == 0 else (len(features), n_out)
        regressor.fit(features, rng.normal(300.0 if prop == "ms_iso" else 0.0, 10.0, size=shape))
        models.append(PropertyModel(element, prop, descriptor, regressor))
        return regressor

    si_soap = SOAP(SPECIES, r_cut=3.5, **SMALL)
    si_iso = add("Si", "ms_iso", si_soap, NystromKernelRidge(n_inducing=12, length_scale=12.0, ridge=1e-4,
                                                           normalize_features=True), 0)
    add("Si", "ms_aniso", LambdaSOAP(SPECIES, r_cut=3.5, lam=2, **SMALL), EquivariantRidge(2, alpha=1e-2), 5)
    add("Si", "efg", LambdaSOAP(SPECIES, r_cut=3.0, lam=2, radial_scaling={"r0": 1.5, "exponent": 4}, **SMALL),
        EquivariantRidge(2, alpha=1e-2), 5)
    add("O", "ms_iso", SOAP(SPECIES, r_cut=3.5, **SMALL),
        NystromKernelRidge(n_inducing=15, ridge=1e-3, kernel="dot_product", zeta=2), 0)
    add("O", "efg", LambdaSOAP(SPECIES, r_cut=3.5, lam=2, **SMALL), EquivariantRidge(2, alpha=1e-2), 5)
    return NMRModel(models, {"Si": (si_soap, si_iso)}, calibration={"Si": {"slope": 0.98, "sigma_ref": 310.0}},
                    isotopes={"O": "17O"}, ood_reference={"Si": np.sort(rng.uniform(0.0, 0.6, 40))},
                    ood_rank={"Si": 10})


def _cluster(seed: int = 3) -> Atoms:
    """Seven atoms in a 4.4 Å box, no periodicity (the NumPy expansion sees no images)."""
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-2.2, 2.2, size=(7, 3))
    positions[0] = 0.0
    return Atoms(["Si", "O", "O", "Na", "Si", "O", "Na"], positions=positions, pbc=False)


@pytest.mark.parametrize("rotate", [False, True])
def test_whole_prediction_equals_the_numpy_pipeline(rotate):
    model, atoms = _model(), _cluster()
    if rotate:   # a rotated copy must give the same invariants (checked through the reference)
        atoms.rotate(37.0, (1.0, 2.0, -0.5))
    expected = reference_outputs(model, atoms, coefficients=numpy_coefficients)
    prediction = model.predict(atoms, unknown_species="skip")
    compared = 0
    for name in ("ms", "ms_iso", "delta_iso", "efg", "cq", "eta_q", "ood_residual", "ms_zeta", "ms_eta"):
        values, reference = getattr(prediction, name), expected[name]
        np.testing.assert_array_equal(np.isnan(values), np.isnan(reference), err_msg=name)
        scale = np.nanmax(np.abs(reference))
        np.testing.assert_allclose(np.nan_to_num(values), np.nan_to_num(reference), rtol=0, atol=1e-7 * scale,
                                   err_msg=name)
        compared += int(np.isfinite(reference).any())
    assert compared == 9
    assert np.isfinite(prediction.ms_iso[[0, 1, 2, 4, 5]]).all() and np.isnan(prediction.ms_iso[[3, 6]]).all()
    assert abs(prediction.ms_iso[0] - prediction.ms_iso[4]) > 1e-3   # the kernel block is not ~0
