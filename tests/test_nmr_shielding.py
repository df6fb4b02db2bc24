"""Shielding conventions (ase_mlnmr.nmr.shielding): hand-worked cases, invariances, and
Soprano 0.11.4 on real magres files."""
from pathlib import Path

import numpy as np
import pytest

from ase_mlnmr.nmr import (
    calibrated_shift,
    haeberlen,
    isotropic_shielding,
    maryland,
    mehring,
    mehring_shifts,
    shielding_from_shift,
    shift_from_shielding,
)

from rotation_helpers import random_rotations, rotated, ry, rz

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "magres_fixtures"


def test_hand_worked_positive_zeta():
    # principal values 20, 50, 110 ppm, rotated by (30, 50, 70) deg
    ms = rotated([20.0, 50.0, 110.0], 30, 50, 70)
    h = haeberlen(ms)
    # iso = (20 + 50 + 110)/3 = 60; deviations -40, -10, +50
    # Haeberlen: zz = 110 (|50|), xx = 20 (|-40|), yy = 50 (|-10|)
    # zeta = 110 - 60 = 50; Delta = 3*50/2 = 75; eta = (50 - 20)/50 = 0.6
    assert h.iso == pytest.approx(60.0)
    assert h.zeta == pytest.approx(50.0)
    assert h.delta_sigma == pytest.approx(75.0)
    assert h.eta == pytest.approx(0.6)
    assert isotropic_shielding(ms) == pytest.approx(60.0)
    m = mehring(ms)
    assert (m.sigma_11, m.sigma_22, m.sigma_33) == pytest.approx((20.0, 50.0, 110.0))
    md = maryland(ms)
    # span = 110 - 20 = 90; skew = 3*(60 - 50)/90 = 1/3
    assert md.span == pytest.approx(90.0)
    assert md.skew == pytest.approx(1.0 / 3.0)
    # shifts with sigma_ref = 170 (approximate, d = 170 - s): 150 >= 120 >= 60
    d = mehring_shifts(ms, 170.0, exact=False)
    assert (d.delta_11, d.delta_22, d.delta_33) == pytest.approx((150.0, 120.0, 60.0))


def test_hand_worked_negative_zeta():
    ms = rotated([-30.0, 10.0, 20.0], -40, 120, 200)
    h = haeberlen(ms)
    # iso = 0; deviations -30, 10, 20 -> zz = -30, xx = 20, yy = 10
    # zeta = -30; Delta = -45; eta = (10 - 20)/(-30) = 1/3
    assert h.iso == pytest.approx(0.0, abs=1e-12)
    assert h.zeta == pytest.approx(-30.0)
    assert h.delta_sigma == pytest.approx(-45.0)
    assert h.eta == pytest.approx(1.0 / 3.0)
    md = maryland(ms)
    # span = 20 - (-30) = 50; skew = 3*(0 - 10)/50 = -0.6
    assert md.span == pytest.approx(50.0)
    assert md.skew == pytest.approx(-0.6)


def test_axial_and_isotropic():
    ms = rotated([105.0, 105.0, 90.0], 10, 20, 30)
    h = haeberlen(ms)
    # iso = 100; zz = 90 -> zeta = -10, eta = 0; span = 15, skew = 3*(100 - 105)/15 = -1
    assert (h.iso, h.zeta, h.eta) == pytest.approx((100.0, -10.0, 0.0), abs=1e-9)
    md = maryland(ms)
    assert (md.span, md.skew) == pytest.approx((15.0, -1.0))
    iso = rotated([7.0, 7.0, 7.0], 11, 22, 33)
    h = haeberlen(iso)
    assert h.zeta == pytest.approx(0.0, abs=1e-12)
    assert h.eta == 0.0  # defined as 0 for an isotropic tensor
    assert maryland(iso).skew == 0.0


def test_antisymmetric_part_is_ignored_and_vectorised():
    rng = np.random.default_rng(3)
    n = 200
    diag = np.sort(rng.uniform(-200, 300, size=(n, 3)), axis=1)
    rots = random_rotations(n, 4)
    ms = rots @ (diag[:, :, None] * np.eye(3)) @ np.swapaxes(rots, 1, 2)
    a = rng.normal(size=(n, 3, 3)) * 20
    ms_ns = ms + (a - np.swapaxes(a, 1, 2))
    for f in (haeberlen, maryland, mehring):
        ref, got = f(ms), f(ms_ns)
        for x, y in zip(ref, got):
            np.testing.assert_allclose(x, y, atol=1e-9)
    m = mehring(ms_ns)
    np.testing.assert_allclose(np.stack(m, 1), diag, atol=1e-9)
    h = haeberlen(ms_ns)
    assert np.all((h.eta >= 0) & (h.eta <= 1))
    md = maryland(ms_ns)
    assert np.all((md.skew >= -1) & (md.skew <= 1)) and np.all(md.span >= 0)
    # single tensor gives the same as the batch
    assert haeberlen(ms_ns[5]).zeta == pytest.approx(h.zeta[5])


def test_shift_referencing():
    # exact: d = (170 - 20)/(1 - 170e-6) = 150/0.99983
    assert shift_from_shielding(20.0, 170.0) == pytest.approx(150.0 / 0.99983, rel=1e-12)
    assert shift_from_shielding(20.0, 170.0, exact=False) == pytest.approx(150.0)
    assert shielding_from_shift(shift_from_shielding(20.0, 170.0), 170.0) == pytest.approx(20.0)
    # calibrated: d = -a (s - sref) = -0.95*(20 - 170) = 142.5
    assert calibrated_shift(20.0, 0.95, 170.0) == pytest.approx(142.5)
    np.testing.assert_allclose(calibrated_shift(np.array([170.0, 180.0]), 1.0, 170.0), [0.0, -10.0])


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        haeberlen(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="shape"):
        maryland(np.zeros((2, 2, 2)))
    bad = np.zeros((3, 3, 3))
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        haeberlen(bad)
    with pytest.raises(ValueError, match="NaN"):
        shift_from_shielding(np.nan, 100.0)


# ---------------------------------------------------------------- Soprano on real data
def _soprano_values(atoms):
    nmr = pytest.importorskip("soprano.properties.nmr")
    return {
        "iso": nmr.MSIsotropy.get(atoms),
        # Soprano's "anisotropy" is szz - (sxx + syy)/2 = 3 zeta/2 (our delta_sigma); its
        # "reduced anisotropy" is zeta; asymmetry (syy - sxx)/zeta uses the same Haeberlen
        # order |szz - siso| >= |sxx - siso| >= |syy - siso|. Span max - min; skew
        # 3(siso - s22)/span on the *shielding*, the same sign as ours (for shifts the
        # same number is 3(d22 - diso)/span). Both symmetrise the tensor first.
        "delta_sigma": nmr.MSAnisotropy.get(atoms),
        "zeta": nmr.MSReducedAnisotropy.get(atoms),
        "eta": nmr.MSAsymmetry.get(atoms),
        "span": nmr.MSSpan.get(atoms),
        "skew": nmr.MSSkew.get(atoms),
    }


@pytest.mark.parametrize("name", ["LiP_CASTEP18.magres", "NaP_QE6.magres"])
def test_against_soprano_magres(name):
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"shared data folder absent ({path})")
    pytest.importorskip("soprano")
    import ase.io

    atoms = ase.io.read(str(path))
    ms = atoms.get_array("ms")
    ref = _soprano_values(atoms.copy())
    h = haeberlen(ms)
    md = maryland(ms)
    np.testing.assert_allclose(h.iso, ref["iso"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(h.delta_sigma, ref["delta_sigma"], rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(h.zeta, ref["zeta"], rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(h.eta, ref["eta"], atol=1e-7)
    np.testing.assert_allclose(md.span, ref["span"], rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(md.skew, ref["skew"], atol=1e-7)
    # Soprano MSShift with gradient -1 is the exact referencing formula
    from soprano.properties.nmr.ms import MSShift

    refs = {s: 100.0 for s in set(atoms.get_chemical_symbols())}
    np.testing.assert_allclose(
        shift_from_shielding(h.iso, 100.0), MSShift.get(atoms.copy(), references=refs), rtol=1e-12
    )


def test_against_soprano_random_nonsymmetric():
    nmr = pytest.importorskip("soprano.properties.nmr")
    from ase import Atoms

    rng = np.random.default_rng(11)
    n = 60
    diag = rng.uniform(-150, 250, size=(n, 3))
    rots = random_rotations(n, 12)
    ms = rots @ (diag[:, :, None] * np.eye(3)) @ np.swapaxes(rots, 1, 2) + rng.normal(size=(n, 3, 3))
    atoms = Atoms("H" * n, positions=rng.uniform(0, 10, (n, 3)))
    atoms.set_array("ms", ms)
    ref = _soprano_values(atoms)
    h = haeberlen(ms)
    md = maryland(ms)
    np.testing.assert_allclose(h.iso, ref["iso"], atol=1e-10)
    np.testing.assert_allclose(h.zeta, ref["zeta"], atol=1e-9)
    np.testing.assert_allclose(h.eta, ref["eta"], atol=1e-9)
    np.testing.assert_allclose(md.span, ref["span"], atol=1e-9)
    np.testing.assert_allclose(md.skew, ref["skew"], atol=1e-9)
