"""Sub-sampled committees (Musil et al., doi:10.1021/acs.jctc.8b00959): NumPy references of the
member fits and of the calibration factor, accuracy of the mean, and equivariance."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.core.spherical_tensors import l2_to_symmetric_traceless
from ase_mlnmr.models.committee import CommitteeSettings, calibration_factor, committee_design
from ase_mlnmr.models.linear import EquivariantRidge
from ase_mlnmr.models.nystrom import NystromKernelRidge
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.training.config import ConfigError, validate_config

from rotation_helpers import random_rotations
from synthetic_data import synthetic_dataset

SMALL = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
         "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40}, "efg": {"alpha": 1e-3},
         "ms_aniso": {"alpha": 1e-3}, "committee": {"size": 8, "fraction": 0.5, "seed": 1}}


def _calibration_reference(predictions, targets, seen):
    """α² = mean_i [(ν−2)/ν |y − ȳ|²/(d s²) − 1/n], atom by atom with Python loops."""
    K, n = predictions.shape[:2]
    predictions = predictions.reshape(K, n, -1)
    targets = targets.reshape(n, -1)
    d = targets.shape[1]
    terms = []
    for i in range(n):
        out = [predictions[k, i] for k in range(K) if not seen[k, i]]
        nu = d * (len(out) - 1)
        if nu <= 2:
            continue
        mean = sum(out) / len(out)
        s2 = sum(float(np.sum((y - mean) ** 2)) for y in out) / nu
        terms.append((nu - 2) / nu * float(np.sum((targets[i] - mean) ** 2)) / (d * s2) - 1.0 / len(out))
    return np.sqrt(np.mean(terms))


@pytest.mark.parametrize("d", [1, 5])
def test_calibration_factor_matches_a_loop_reference(d):
    rng = np.random.default_rng(3)
    K, n = 8, 40
    predictions = rng.normal(size=(K, n, d))
    targets = rng.normal(size=(n, d)) * 3.0
    seen = rng.random((K, n)) < 0.5
    expected = _calibration_reference(predictions, targets, seen)
    assert calibration_factor(predictions[..., 0] if d == 1 else predictions, targets[:, 0] if d == 1 else targets,
                              seen) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("d", [1, 5])
def test_calibration_factor_recovers_a_known_scale(d):
    """Members y_k = m + s z_k, truth m + α s z: the finite-committee corrections make α unbiased
    (without them, 4 out-of-sample members would give α about √3 times too large for d = 1)."""
    rng = np.random.default_rng(7)
    K, n, alpha = 8, 40000, 2.0
    scale = rng.uniform(0.5, 3.0, size=(n, 1))
    centre = rng.normal(size=(n, d)) * 10
    predictions = centre + scale * rng.normal(size=(K, n, d))
    targets = centre + alpha * scale * rng.normal(size=(n, d))
    seen = np.zeros((K, n), bool)
    seen[:4] = True  # 4 members never saw any atom
    assert calibration_factor(predictions, targets, seen) == pytest.approx(alpha, rel=0.05)


def test_design_draws_groups_without_replacement_and_balances_them():
    groups = np.repeat(np.arange(10), 7)  # 10 structures of 7 atoms
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=0))
    assert rows.shape == (8, 70)
    for member in rows:
        taken = np.unique(groups[member])
        assert len(taken) == 5 and np.all(member == np.isin(groups, taken))  # whole groups only
    left_out = (~rows).reshape(8, 10, 7)[:, :, 0].sum(axis=0)
    assert left_out.min() == left_out.max() == 4
    with pytest.raises(ValueError, match="at least 2 groups"):
        committee_design(np.zeros(5), CommitteeSettings(size=4))
    with pytest.raises(ValueError, match="at least 4 members"):
        committee_design(groups, CommitteeSettings(size=2))
    with pytest.raises(ValueError, match="fewer than 4 members"):
        committee_design(groups, CommitteeSettings(size=4, fraction=0.5))
    odd = np.arange(207)  # 8 × round(0.5 × 207) = 832 > 4 × 207 uses: one group fewer per member
    left_out = (~committee_design(odd, CommitteeSettings(size=8, fraction=0.5))).sum(axis=0)
    assert left_out.min() >= 4


def _regression_data(n_groups=30, per_group=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_groups * per_group, 4))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.05 * rng.normal(size=len(X))
    return X, y, np.repeat(np.arange(n_groups), per_group)


def test_nystrom_members_match_a_numpy_reference_on_fixed_inducing_points():
    X, y, groups = _regression_data()
    rows = committee_design(groups, CommitteeSettings(size=6, fraction=0.3, seed=2))
    model = NystromKernelRidge(n_inducing=25, length_scale=2.0, ridge=1e-3).fit(X, y, member_rows=rows)
    Xt, Z = model.transform(X), model.inducing_points_
    kernel = lambda a, b: np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * 2.0**2))  # noqa: E731
    K_xz, K_zz = kernel(Xt, Z), kernel(Z, Z)
    ys = (y - y.mean()) / y.std()
    raw = np.array([np.linalg.solve(K_xz[r].T @ K_xz[r] + 1e-3 * K_zz, K_xz[r].T @ ys[r]) for r in rows])
    full = np.linalg.solve(K_xz.T @ K_xz + 1e-3 * K_zz, K_xz.T @ ys)
    expected = (K_xz @ (full + raw - raw.mean(axis=0)).T).T * y.std() + y.mean()
    members = model.predict_members(X)
    assert np.max(np.abs(members - expected)) <= 1e-7 * np.max(np.abs(expected))


def test_committee_mean_is_the_full_model_and_no_less_accurate_on_held_out_data():
    X, y, groups = _regression_data(n_groups=40, seed=1)
    Xtest, ytest, _ = _regression_data(n_groups=10, seed=2)
    settings = dict(n_inducing=60, length_scale=2.0, ridge=1e-4)
    single = NystromKernelRidge(**settings).fit(X, y)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5))
    committee = NystromKernelRidge(**settings).fit(X, y, member_rows=rows)
    mean = committee.predict_members(Xtest).mean(axis=0)
    assert np.mean(np.abs(mean - ytest)) <= np.mean(np.abs(single.predict(Xtest) - ytest)) * (1 + 1e-9)
    np.testing.assert_allclose(mean, single.predict(Xtest), rtol=0, atol=1e-9)
    assert np.all(committee.predict_std(Xtest) > 0)


def test_members_differ_only_in_their_weights_and_survive_the_round_trip():
    X, y, groups = _regression_data()
    rows = committee_design(groups, CommitteeSettings(size=6, fraction=0.3))
    plain_arrays, _ = NystromKernelRidge(n_inducing=20, length_scale=2.0, ridge=1e-3).fit(X, y).to_arrays()
    model = NystromKernelRidge(n_inducing=20, length_scale=2.0, ridge=1e-3).fit(X, y, member_rows=rows)
    arrays, params = model.to_arrays()
    assert set(arrays) - set(plain_arrays) == {"member_weights"}
    for name, value in plain_arrays.items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
    members = model.predict_members(X)
    for k in range(6):
        alone = NystromKernelRidge.from_arrays({**plain_arrays, "weights": arrays["member_weights"][k]}, params)
        np.testing.assert_allclose(alone.predict(X), members[k], rtol=0, atol=1e-12 * np.abs(members).max())
    loaded = NystromKernelRidge.from_arrays(arrays, params)
    np.testing.assert_array_equal(loaded.predict_std(X), model.predict_std(X))
    assert NystromKernelRidge.from_arrays(plain_arrays, params).committee_size == 0  # an old file: no committee
    with pytest.raises(RuntimeError, match="committee"):
        model.set_ridge(1e-2)


def test_equivariant_members_match_a_numpy_reference():
    rng = np.random.default_rng(4)
    n, p = 60, 7
    X = rng.normal(size=(n, 5, p))
    y = X @ rng.normal(size=p) + 0.1 * rng.normal(size=(n, 5))
    groups = np.repeat(np.arange(12), 5)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=3))
    model = EquivariantRidge(alpha=1e-2).fit(X, y).fit_members(X, y, rows)
    s = np.sqrt(np.mean(X**2, axis=(0, 1)))
    t = np.sqrt(np.mean(y**2))

    def weights(r):
        A = (X[r] / s).reshape(-1, p)
        return np.linalg.solve(A.T @ A + 1e-2 * np.eye(p), A.T @ (y[r] / t).reshape(-1))

    raw = np.array([weights(r) for r in rows])
    coef = (weights(np.ones(n, bool)) + raw - raw.mean(axis=0)) * t / s
    np.testing.assert_allclose(model.predict_members(X), np.einsum("nmp,kp->knm", X, coef), rtol=1e-10, atol=1e-12)
    arrays, params = model.to_arrays()
    np.testing.assert_array_equal(EquivariantRidge.from_arrays(arrays, params).predict_std(X), model.predict_std(X))


def test_config_section_is_validated():
    assert validate_config({})["committee"] == {"size": 0, "fraction": 0.5, "seed": 0, "calibration": "scale"}
    with pytest.raises(ConfigError, match="committee.size"):
        validate_config({"committee": {"size": 2}})
    with pytest.raises(ConfigError, match="committee.fraction"):
        validate_config({"committee": {"fraction": 1.0}})
    with pytest.raises(ConfigError, match="committee"):
        NMRModel.train(synthetic_dataset(n_structures=6, n_atoms=12), {**SMALL, "ms_iso": {"regressor": "linear"},
                                                                       "species": {"Si": {"properties": ["ms_iso"]}}},
                       progress=False)


@pytest.fixture(scope="module")
def trained():
    data = synthetic_dataset(n_structures=10, n_atoms=24, seed=5)
    return data, NMRModel.train(data, {**SMALL, "species": {"Si": {"properties": ["ms_iso", "efg"]}}},
                                progress=False)


def test_every_member_rotates_with_the_structure_and_the_cq_spread_is_invariant(trained):
    data, model = trained
    efg, iso = model.models[("Si", "efg")], model.models[("Si", "ms_iso")]
    assert efg.regressor.committee_size == 8 and iso.regressor.committee_size == 8
    atoms = data.structures[0]
    centres = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "Si")
    R = random_rotations(1, seed=11)[0]
    turned = atoms.copy()
    turned.positions = atoms.positions @ R.T
    turned.set_cell(atoms.cell[:] @ R.T, scale_atoms=False)

    def members(structure):
        comps = efg.regressor.predict_members(efg.features(structure, centres))
        return l2_to_symmetric_traceless(comps.reshape(-1, 5)).reshape(len(comps), len(centres), 3, 3)

    before, after = members(atoms), members(turned)
    scale = np.abs(before).max()
    np.testing.assert_allclose(after, R @ before @ R.T, rtol=0, atol=1e-10 * scale)

    def vzz_spread(tensors):
        eig = np.linalg.eigvalsh(tensors)
        vzz = np.take_along_axis(eig, np.abs(eig).argmax(axis=-1)[..., None], axis=-1)[..., 0]
        return np.std(np.abs(vzz), axis=0, ddof=1)

    np.testing.assert_allclose(vzz_spread(after), vzz_spread(before), rtol=0, atol=1e-10 * scale)
    iso_before = iso.regressor.predict_std(iso.features(atoms, centres))
    iso_after = iso.regressor.predict_std(iso.features(turned, centres))
    np.testing.assert_allclose(iso_after, iso_before, rtol=0, atol=1e-10 * np.abs(iso_before).max())


def test_model_file_round_trip_keeps_the_committee_and_a_committee_free_file_loads(trained, tmp_path):
    data, model = trained
    path = model.save(tmp_path / "committee.npz")
    loaded = NMRModel.load(path)
    atoms = data.structures[1]
    centres = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "Si")
    for prop in ("ms_iso", "efg"):
        ours, theirs = model.models[("Si", prop)], loaded.models[("Si", prop)]
        features = ours.features(atoms, centres)
        np.testing.assert_array_equal(theirs.regressor.predict_std(features), ours.regressor.predict_std(features))
    plain = NMRModel.train(data, {**SMALL, "committee": {"size": 0}, "species": {"Si": {"properties": ["ms_iso"]}}},
                           progress=False)
    assert NMRModel.load(plain.save(tmp_path / "plain.npz")).models[("Si", "ms_iso")].regressor.committee_size == 0
