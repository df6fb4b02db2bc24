"""Principal frames, Euler angles and quaternions (ase_mlnmr.nmr.orientation)."""
import numpy as np
import pytest

from ase_mlnmr.nmr import (
    canonical_euler_angles,
    equivalent_euler_angles,
    equivalent_quaternions,
    euler_from_rotation,
    principal_frame,
    quaternion_from_rotation,
    rotation_from_euler,
    rotation_from_quaternion,
    tensor_orientation,
)

from rotation_helpers import random_rotations, ry, rz

FLIPS = [np.diag(d) for d in ([1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1])]


def zyz(a, b, g):
    return rz(a) @ ry(b) @ rz(g)


def same_up_to_axis_flips(r_got, r_ref, atol=1e-9):
    """r_got == r_ref @ F for one of the four proper diagonal sign matrices F."""
    return any(np.allclose(r_got, r_ref @ f, atol=atol) for f in FLIPS)


def in_canonical_range(a, b, g, eps=1e-12):
    ok = (0 <= b <= np.pi / 2 + eps) and (0 <= g < np.pi) and (0 <= a < 2 * np.pi)
    if abs(b - np.pi / 2) < 1e-9:
        ok = ok and a < np.pi
    if b < 1e-9:
        ok = ok and g == 0.0 and a < np.pi
    return ok


def test_rotation_from_euler_matches_explicit_product():
    a, b, g = np.radians([30.0, 50.0, 70.0])
    np.testing.assert_allclose(rotation_from_euler(a, b, g), zyz(a, b, g), atol=1e-15)
    # active ZYZ: the principal z axis ends at polar angles (beta, alpha)
    z = rotation_from_euler(a, b, g) @ [0, 0, 1]
    np.testing.assert_allclose(z, [np.cos(a) * np.sin(b), np.sin(a) * np.sin(b), np.cos(b)], atol=1e-15)


def test_known_rotation_recovered():
    a, b, g = np.radians([30.0, 50.0, 70.0])
    r = zyz(a, b, g)
    # EFG order |Vxx| <= |Vyy| <= |Vzz|
    v = r @ np.diag([-0.2, -0.8, 1.0]) @ r.T
    o = tensor_orientation(v, "efg")
    assert not o.axial
    assert in_canonical_range(o.alpha, o.beta, o.gamma)
    # (30, 50, 70) deg already lies in the canonical range, so it is returned as is
    np.testing.assert_allclose([o.alpha, o.beta, o.gamma], [a, b, g], atol=1e-9)
    assert same_up_to_axis_flips(o.rotation, r)
    np.testing.assert_allclose(rotation_from_quaternion(o.quaternion), o.rotation, atol=1e-12)
    # Haeberlen order for a shielding tensor: |zz| >= |xx| >= |yy| about iso = 100
    s = r @ np.diag([100 - 40.0, 100 - 10.0, 100 + 50.0]) @ r.T
    o = tensor_orientation(s, "haeberlen")
    assert same_up_to_axis_flips(o.rotation, r)


def test_outside_range_angles_map_to_canonical_equivalent():
    # beta = 120 deg > 90 deg: canonical (pi + a, pi - b, pi - g) -> (210, 60, 110) deg
    a, b, g = np.radians([30.0, 120.0, 70.0])
    c = canonical_euler_angles(a, b, g)
    np.testing.assert_allclose(np.degrees([c.alpha, c.beta, c.gamma]), [210.0, 60.0, 110.0], atol=1e-9)
    # gamma = 250 deg: (a, b, g - pi) -> (30, 50, 70) deg
    c = canonical_euler_angles(*np.radians([30.0, 50.0, 250.0]))
    np.testing.assert_allclose(np.degrees([c.alpha, c.beta, c.gamma]), [30.0, 50.0, 70.0], atol=1e-9)


def test_equivalent_euler_angles_are_axis_flips():
    a, b, g = np.radians([30.0, 50.0, 70.0])
    eq = equivalent_euler_angles(a, b, g)
    assert eq.shape == (4, 3)
    r = zyz(a, b, g)
    # (a, b, g) -> R; (a, b, pi+g) -> R Rz(pi) = R diag(-1,-1,1);
    # (pi+a, pi-b, pi-g) -> R Ry(pi) = R diag(-1,1,-1); (pi+a, pi-b, 2pi-g) -> R diag(1,-1,-1)
    for k, flip in zip(range(4), (FLIPS[0], FLIPS[3], FLIPS[2], FLIPS[1])):
        np.testing.assert_allclose(zyz(*eq[k]), r @ flip, atol=1e-12)
    # all four are distinct rotations
    mats = [zyz(*row) for row in eq]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(mats[i], mats[j])


def test_random_rotations_recovered_and_canonical_unique():
    n = 400
    rots = random_rotations(n, 7)
    rng = np.random.default_rng(8)
    s = np.sort(rng.uniform(0.1, 1.0, size=(n, 2)), axis=1)
    # Vxx = -s0, Vyy = -1.5 s1, Vzz = s0 + 1.5 s1: |Vxx| < |Vyy| < |Vzz|, eta >= 0.2 (not axial)
    vals = np.stack([-s[:, 0], -1.5 * s[:, 1], s[:, 0] + 1.5 * s[:, 1]], axis=1)
    t = rots @ (vals[:, :, None] * np.eye(3)) @ np.swapaxes(rots, 1, 2)
    o = tensor_orientation(t, "efg")
    assert not np.any(o.axial)
    for i in range(n):
        assert same_up_to_axis_flips(o.rotation[i], rots[i], atol=1e-7)
        assert in_canonical_range(o.alpha[i], o.beta[i], o.gamma[i])
    # every member of the equivalence class canonicalises to the same triple
    eq = equivalent_euler_angles(o.alpha, o.beta, o.gamma)
    for k in range(4):
        c = canonical_euler_angles(eq[:, k, 0], eq[:, k, 1], eq[:, k, 2])
        np.testing.assert_allclose(np.stack(c, 1), np.stack([o.alpha, o.beta, o.gamma], 1), atol=1e-9)
    # a single tensor gives the batch answer
    single = tensor_orientation(t[3], "efg")
    np.testing.assert_allclose([single.alpha, single.beta, single.gamma], [o.alpha[3], o.beta[3], o.gamma[3]])


def test_euler_round_trip_including_gimbal_lock():
    rng = np.random.default_rng(9)
    angles = rng.uniform(-7, 7, size=(300, 3))
    angles[:20, 1] = 0.0
    angles[20:40, 1] = np.pi
    angles[40:60, 1] = np.pi / 2
    r = rotation_from_euler(*angles.T)
    e = euler_from_rotation(r)
    np.testing.assert_allclose(rotation_from_euler(*e), r, atol=1e-12)
    c = canonical_euler_angles(*angles.T)
    for i in range(len(angles)):
        assert in_canonical_range(c.alpha[i], c.beta[i], c.gamma[i]), (angles[i], c.alpha[i], c.beta[i], c.gamma[i])
        assert same_up_to_axis_flips(rotation_from_euler(c.alpha[i], c.beta[i], c.gamma[i]), r[i])


def test_quaternions_against_scipy_and_equivalents():
    rotation_cls = pytest.importorskip("scipy.spatial.transform").Rotation
    rots = random_rotations(200, 10)
    q = quaternion_from_rotation(rots)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-14)
    xyzw = rotation_cls.from_matrix(rots).as_quat()  # SciPy: scalar-last
    ref = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    assert np.allclose(np.abs(np.einsum("ni,ni->n", q, ref)), 1.0, atol=1e-12)
    np.testing.assert_allclose(rotation_from_quaternion(q), rots, atol=1e-12)
    np.testing.assert_allclose(rotation_from_quaternion(-q), rots, atol=1e-12)  # q == -q
    eq = equivalent_quaternions(q)
    assert eq.shape == (200, 8, 4)
    for i in range(0, 200, 17):
        mats = rotation_from_quaternion(eq[i])
        for k in range(4):
            np.testing.assert_allclose(mats[k], rots[i] @ FLIPS[k], atol=1e-12)
            np.testing.assert_allclose(mats[k + 4], rots[i] @ FLIPS[k], atol=1e-12)


def test_special_quaternions():
    # identity -> (1, 0, 0, 0); pi about x -> (0, 1, 0, 0); 90 deg about z -> (cos45, 0, 0, sin45)
    np.testing.assert_allclose(quaternion_from_rotation(np.eye(3)), [1, 0, 0, 0], atol=1e-15)
    np.testing.assert_allclose(quaternion_from_rotation(np.diag([1.0, -1, -1])), [0, 1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(quaternion_from_rotation(rz(np.pi / 2)), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)], atol=1e-15)


def test_axial_and_isotropic_flagged_without_nan():
    a, b = np.radians([40.0, 130.0])
    r = zyz(a, b, np.radians(80.0))
    axial = r @ np.diag([-1.0, -1.0, 2.0]) @ r.T
    o = tensor_orientation(axial, "efg")
    assert o.axial and o.gamma == 0.0
    assert np.all(np.isfinite([o.alpha, o.beta, o.gamma]))
    # unique axis recovered up to sign: R e_z = +-(cos a sin b, sin a sin b, cos b)
    z_ref = r[:, 2]
    assert abs(abs(o.rotation[:, 2] @ z_ref) - 1.0) < 1e-9
    assert in_canonical_range(o.alpha, o.beta, o.gamma)
    iso = tensor_orientation(r @ np.diag([3.0, 3.0, 3.0]) @ r.T, "haeberlen")
    assert iso.axial and (iso.alpha, iso.beta, iso.gamma) == (0.0, 0.0, 0.0)
    zero = tensor_orientation(np.zeros((3, 3)))
    assert zero.axial
    # documented tolerance eta <= 1e-6: eta = 1e-8 flagged, eta = 1e-3 not
    for eta, flagged in [(1e-8, True), (1e-3, False)]:
        vals = [-(1 - eta) / 2, -(1 + eta) / 2, 1.0]
        assert bool(tensor_orientation(r @ np.diag(vals) @ r.T).axial) is flagged


def test_principal_frame_conventions():
    r = zyz(*np.radians([10.0, 20.0, 30.0]))
    t = r @ np.diag([60.0, 90.0, 150.0]) @ r.T  # iso 100: deviations -40, -10, 50
    np.testing.assert_allclose(principal_frame(t, "mehring").values, [60, 90, 150])
    np.testing.assert_allclose(principal_frame(t, "haeberlen").values, [60, 90, 150])
    np.testing.assert_allclose(principal_frame(t, "efg").values, [90, 60, 150])
    for conv in ("mehring", "haeberlen", "efg"):
        f = principal_frame(t, conv)
        assert np.linalg.det(f.vectors) == pytest.approx(1.0)
        np.testing.assert_allclose(f.vectors @ np.diag(f.values) @ f.vectors.T, t, atol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="proper rotation"):
        quaternion_from_rotation(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="proper rotation"):
        euler_from_rotation(2 * np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        rotation_from_euler(np.nan, 0.0, 0.0)
    with pytest.raises(ValueError, match="convention"):
        principal_frame(np.eye(3), "mehrin")
    with pytest.raises(ValueError, match="shape"):
        tensor_orientation(np.zeros((5, 9)))
    with pytest.raises(ValueError, match="NaN"):
        tensor_orientation(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="quaternions"):
        rotation_from_quaternion(np.zeros(4))
