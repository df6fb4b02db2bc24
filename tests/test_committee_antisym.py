"""σ(1) (``ms_antisym``) committee spread of the compiled evaluator (issue 13): equal to the
calibrated spread of the members' predictions on independent NumPy λ-SOAP features
(tests/numpy_reference.py, sympy Clebsch–Gordan) from the member weights stored in a model
file, with the calibration law applied in NumPy; rotation- and inversion-invariant mean
square; NaN without a σ(1) committee, also for files in an old layout."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.core.spherical_tensors import antisymmetric_to_vector
from ase_mlnmr.nmr_model import NMRModel

from conftest import random_structure
from evaluator_reference import padded_coefficients
from legacy_model_files import save_in_245de03_layout
from numpy_reference import lambda_features
from rotation_helpers import random_rotations
from synthetic_data import synthetic_dataset, with_antisymmetric_shielding
from test_evaluator import build_model

CONFIG = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 3, "sigma": 0.4},
          "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40}, "efg": {"alpha": 1e-3},
          "ms_antisym": {"alpha": 1e-3},
          "species": {"Si": {"properties": ["ms_iso", "ms_antisym"]}, "O": {"properties": ["efg"]}}}


@pytest.fixture(scope="module", params=["scale", "power"])
def loaded(request, tmp_path_factory):
    """(calibration, a σ(1) committee model with it read back from its model file)."""
    data = with_antisymmetric_shielding(synthetic_dataset(n_structures=10, n_atoms=24, seed=8))
    config = {**CONFIG, "committee": {"size": 8, "fraction": 0.5, "seed": 2, "calibration": request.param}}
    model = NMRModel.train(data, config, progress=False)
    return request.param, NMRModel.load(model.save(tmp_path_factory.mktemp("antisym") / "model.npz"))


def _test_structure():
    return random_structure(40, symbols=("Si", "O", "O"), seed=78, min_distance=1.5)


def _calibrated_spread(members: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """u_μ = sqrt((a s^(b−1) std_μ)² + c²) of members (K, n, 2λ+1): std_μ with ddof 1 over the
    members, s² the mean of std_μ² over μ (docs/uncertainty.md)."""
    std = np.std(members, axis=0, ddof=1)
    spread = np.sqrt(np.mean(std**2, axis=-1, keepdims=True))
    return np.sqrt((a * spread ** (b - 1.0) * std) ** 2 + c**2)


def test_sigma1_spread_equals_the_numpy_members_of_the_stored_weights(loaded):
    calibration, model = loaded
    atoms = _test_structure()
    si = np.flatnonzero(atoms.numbers == 14)
    component = model.models[("Si", "ms_antisym")]
    regressor, descriptor = component.regressor, component.descriptor
    assert regressor.committee_size == 8 and descriptor.lam == 1
    law = (regressor.calibration_, regressor.calibration_power_, regressor.calibration_floor_)
    assert (law[1:] == (1.0, 0.0)) == (calibration == "scale")   # "power": σ(1)'s own law, not α alone
    features = np.array([lambda_features(c, descriptor.lam, descriptor.pairs, descriptor.two_body)
                         for c in padded_coefficients(descriptor, atoms, si)])          # (n, 3, P)
    members = np.einsum("nmp,kp->knm", features, regressor.member_coef_)            # (K, n, 3) ppm
    expected = _calibrated_spread(members, *law)
    prediction = model.predict(atoms)
    assert prediction.ms_antisym_std.shape == (len(atoms), 3)
    np.testing.assert_allclose(prediction.ms_antisym_std[si], expected, rtol=1e-10, atol=0)
    # the members are σ(1) models whose mean is the full model's σ(1) in the predicted tensor
    np.testing.assert_allclose(members.mean(axis=0), antisymmetric_to_vector(prediction.ms[si]),
                               atol=1e-10 * np.abs(members).max())
    # no σ(1) model for O; no shielding requested: NaN
    assert np.isnan(prediction.ms_antisym_std[atoms.numbers == 8]).all()
    assert np.isnan(model.predict(atoms, outputs=["efg"]).ms_antisym_std).all()
    # the ASE calculator carries the same values
    from ase_mlnmr.calculator import NMRCalculator
    atoms.calc = NMRCalculator(model)
    np.testing.assert_allclose(atoms.calc.get_property("ms_antisym_std", atoms)[si], expected, rtol=1e-10, atol=0)


def test_sigma1_spread_mean_square_is_invariant_under_rotation_and_inversion(loaded):
    _, model = loaded
    atoms = _test_structure()
    si = atoms.numbers == 14
    base = np.mean(model.predict(atoms).ms_antisym_std[si] ** 2, axis=1)
    for rotation in [*random_rotations(2, seed=4), -np.eye(3)]:
        moved = atoms.copy()
        moved.positions = atoms.positions @ rotation.T
        moved.cell = atoms.cell.array @ rotation.T
        again = np.mean(model.predict(moved).ms_antisym_std[si] ** 2, axis=1)
        np.testing.assert_allclose(again, base, rtol=1e-9)


def test_no_sigma1_committee_gives_nan_also_from_an_old_layout_file(tmp_path):
    model = build_model()     # Si has a σ(1) model without a committee
    atoms = random_structure(30, symbols=("Si", "O", "O", "Na"), seed=51, min_distance=1.5)
    si = atoms.numbers == 14
    save_in_245de03_layout(model, tmp_path / "old.npz")
    for source in (model, NMRModel.load(tmp_path / "old.npz")):
        prediction = source.predict(atoms)
        assert np.isfinite(prediction.ms[si]).all()
        assert np.isnan(prediction.ms_antisym_std).all()
