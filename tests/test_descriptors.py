"""SOAP / λ-SOAP: agreement with an independent NumPy evaluation, symmetry, continuity,
periodic images, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from ase_mlnmr.descriptors import LambdaSOAP, SOAP, random_species_mixing
from ase_mlnmr.core.clebsch_gordan import coupling_pairs
from ase_mlnmr.core.spherical_tensors import L2_BASIS, l2_to_symmetric_traceless

import numpy_reference as ref
from conftest import random_rotation, random_structure

SPECIES = ["Si", "O", "Na"]


def _cluster(seed: int = 0) -> Atoms:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-2.2, 2.2, size=(7, 3))
    positions[0] = 0.0
    return Atoms(["Si", "O", "O", "Na", "Si", "O", "Na"], positions=positions, pbc=False)


@pytest.fixture(scope="module")
def reference_cluster():
    atoms = _cluster()
    params = dict(r_cut=3.5, n_max=3, l_max=3, sigma=0.5)
    species_index = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    coefficients = []
    for centre in (0, 3):
        vectors = np.delete(atoms.positions - atoms.positions[centre], centre, axis=0)
        spc = np.delete(species_index, centre)
        coefficients.append(ref.expansion(vectors, spc, 3, params["r_cut"], params["sigma"], params["n_max"], params["l_max"]))
    return atoms, params, coefficients


def test_expansion_matches_numpy_reference(reference_cluster):
    atoms, params, coefficients = reference_cluster
    blocks = SOAP(SPECIES, **params).spherical_expansion(atoms, centres=[0, 3])
    l_max = params["l_max"]
    for k, c_ref in enumerate(coefficients):
        for l, block in enumerate(blocks):
            np.testing.assert_allclose(block[k], c_ref[:, :, l, l_max - l: l_max + l + 1], atol=1e-8, rtol=1e-7)


def test_radially_scaled_expansion_matches_numpy_reference():
    atoms = _cluster(1)
    params = dict(r_cut=3.5, n_max=3, l_max=2, sigma=0.5)
    species_index = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    descriptor = SOAP(SPECIES, radial_scaling={"r0": 1.5, "exponent": 4}, **params)
    assert descriptor.get_parameters()["radial_scaling"] == {"r0": 1.5, "exponent": 4.0}
    blocks = descriptor.spherical_expansion(atoms, centres=[2])
    vectors = np.delete(atoms.positions - atoms.positions[2], 2, axis=0)
    c_ref = ref.expansion(vectors, np.delete(species_index, 2), 3, params["r_cut"], params["sigma"],
                          params["n_max"], params["l_max"], scaling=(1.5, 4.0))
    unscaled = SOAP(SPECIES, **params).spherical_expansion(atoms, centres=[2])
    for l, block in enumerate(blocks):
        np.testing.assert_allclose(block[0], c_ref[:, :, l, 2 - l: 2 + l + 1], atol=1e-8, rtol=1e-7)
        assert not np.allclose(block[0], unscaled[l][0])  # the scaling did something
    with pytest.raises(ValueError, match="radial_scaling"):
        SOAP(SPECIES, radial_scaling={"r0": -1.0, "exponent": 4}, **params)
    with pytest.raises(ValueError, match="radial_scaling"):
        SOAP(SPECIES, radial_scaling={"r0": 1.0}, **params)


def test_power_spectrum_matches_numpy_reference(reference_cluster):
    atoms, params, coefficients = reference_cluster
    features = SOAP(SPECIES, **params).create(atoms, centres=[0, 3])
    for k, c_ref in enumerate(coefficients):
        np.testing.assert_allclose(features[k], ref.power_spectrum(c_ref), atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("lam", [1, 2])
def test_lambda_features_match_numpy_reference(reference_cluster, lam):
    atoms, params, coefficients = reference_cluster
    descriptor = LambdaSOAP(SPECIES, lam=lam, **params)
    features = descriptor.create(atoms, centres=[0, 3])
    for k, c_ref in enumerate(coefficients):
        expected = ref.lambda_features(c_ref, lam, coupling_pairs(params["l_max"], lam))
        np.testing.assert_allclose(features[k], expected, atol=1e-8, rtol=1e-7)


def _rotated(atoms: Atoms, rotation: np.ndarray, shift=(0.3, -1.2, 2.0)) -> Atoms:
    out = atoms.copy()
    out.positions = atoms.positions @ rotation.T + np.asarray(shift)
    out.cell = atoms.cell.array @ rotation.T
    return out


def test_power_spectrum_invariant_under_rotation_translation_permutation():
    atoms = random_structure(36, seed=11)
    soap = SOAP(SPECIES, r_cut=4.5, n_max=5, l_max=5, sigma=0.4)
    base = soap.create(atoms)
    assert np.abs(base).max() > 1e-3
    for seed in range(3):
        rotated = soap.create(_rotated(atoms, random_rotation(seed)))
        np.testing.assert_allclose(rotated, base, atol=1e-10 * np.abs(base).max())
    permutation = np.random.default_rng(5).permutation(len(atoms))
    permuted = soap.create(atoms[permutation])
    np.testing.assert_allclose(permuted, base[permutation], atol=1e-10 * np.abs(base).max())


def test_supercell_gives_identical_per_atom_features():
    # cell edges ~3 Å with r_cut 5 Å: many images of the same atom in one environment
    cell = np.array([[3.2, 0.0, 0.0], [0.6, 3.1, 0.0], [0.4, 0.3, 3.3]])
    atoms = random_structure(3, symbols=("Si", "O"), cell=cell, min_distance=1.2, seed=4)
    soap = SOAP(["Si", "O"], r_cut=5.0, n_max=4, l_max=4, sigma=0.4)
    base = soap.create(atoms)
    supercell = atoms.repeat((3, 2, 2))
    features = soap.create(supercell)
    np.testing.assert_allclose(features, np.tile(base, (12, 1)), atol=1e-10 * np.abs(base).max())


def test_lambda2_features_rotate_and_are_unchanged_by_inversion():
    atoms = random_structure(30, seed=21)
    descriptor = LambdaSOAP(SPECIES, r_cut=4.0, n_max=3, l_max=4, sigma=0.4, lam=2)
    base = descriptor.create(atoms)  # (n, 5, F)
    tensors = np.einsum("nmf,mij->nfij", base, L2_BASIS)
    scale = np.abs(tensors).max()
    for seed in range(3):
        rotation = random_rotation(100 + seed)
        rotated = np.einsum("nmf,mij->nfij", descriptor.create(_rotated(atoms, rotation)), L2_BASIS)
        np.testing.assert_allclose(rotated, rotation @ tensors @ rotation.T, atol=1e-10 * scale)
    inverted = descriptor.create(_rotated(atoms, -np.eye(3)))
    np.testing.assert_allclose(inverted, base, atol=1e-10 * scale)


def test_lambda1_features_are_pseudovectors():
    atoms = random_structure(30, seed=23)
    descriptor = LambdaSOAP(SPECIES, r_cut=4.0, n_max=3, l_max=3, sigma=0.4, lam=1, two_body=False)
    base = descriptor.create(atoms)  # components (y, z, x)
    vectors = base[:, [2, 0, 1], :]  # -> (x, y, z)
    scale = np.abs(vectors).max()
    assert scale > 1e-6
    rotation = random_rotation(7)
    rotated = descriptor.create(_rotated(atoms, rotation))[:, [2, 0, 1], :]
    np.testing.assert_allclose(rotated, np.einsum("ij,njf->nif", rotation, vectors), atol=1e-10 * scale)
    # a pseudovector does not change sign under inversion (a polar vector would)
    np.testing.assert_allclose(descriptor.create(_rotated(atoms, -np.eye(3))), base, atol=1e-10 * scale)


def test_contracted_path_equals_features_times_weights_and_rotates():
    atoms = random_structure(40, seed=31)
    descriptor = LambdaSOAP(SPECIES, r_cut=4.5, n_max=4, l_max=4, sigma=0.4)
    weights = np.random.default_rng(0).normal(size=descriptor.n_features)
    explicit = descriptor.create(atoms) @ weights
    contracted = descriptor.contract(atoms, weights)
    np.testing.assert_allclose(contracted, explicit, atol=1e-12 * np.abs(explicit).max())
    tensors = descriptor.contract_tensors(atoms, weights)
    np.testing.assert_allclose(tensors, np.swapaxes(tensors, 1, 2))
    np.testing.assert_allclose(np.trace(tensors, axis1=1, axis2=2), 0, atol=1e-12 * np.abs(tensors).max())
    rotation = random_rotation(3)
    rotated = descriptor.contract_tensors(_rotated(atoms, rotation), weights)
    np.testing.assert_allclose(rotated, rotation @ tensors @ rotation.T, atol=1e-10 * np.abs(tensors).max())


def test_features_continuous_when_a_neighbour_crosses_the_cutoff():
    r_cut = 4.0
    soap = SOAP(["Si", "O"], r_cut=r_cut, n_max=4, l_max=3, sigma=0.4)
    lam = LambdaSOAP(["Si", "O"], r_cut=r_cut, n_max=4, l_max=3, sigma=0.4)
    base = [[0, 0, 0], [1.6, 0.2, 0.1], [-0.3, 1.5, 0.4]]
    direction = np.array([0.3, -0.5, 0.81])
    direction /= np.linalg.norm(direction)

    def features(distance):
        atoms = Atoms("SiOOO", positions=base + [list(distance * direction)], pbc=False)
        return soap.create(atoms, [0])[0], lam.create(atoms, [0])[0]

    inside_p, inside_q = features(r_cut - 1e-7)
    outside_p, outside_q = features(r_cut + 1e-7)
    far_p, _ = features(r_cut - 0.5)
    assert np.abs(far_p - outside_p).max() > 1e-4  # the neighbour does matter further in
    np.testing.assert_allclose(inside_p, outside_p, atol=1e-12)
    np.testing.assert_allclose(inside_q, outside_q, atol=1e-12)


def test_atom_without_neighbours_has_zero_features():
    atoms = Atoms("SiO", positions=[[0, 0, 0], [20, 0, 0]], pbc=False)
    features = SOAP(["Si", "O"], r_cut=5.0, n_max=3, l_max=2, sigma=0.4).create(atoms)
    assert features.shape[0] == 2 and np.all(features == 0)


def test_species_mixing_is_a_linear_map_of_channels():
    atoms = random_structure(20, seed=41)
    mixing = random_species_mixing(3, 2, seed=1)
    plain = SOAP(SPECIES, r_cut=4.0, n_max=3, l_max=2, sigma=0.4).spherical_expansion(atoms)
    mixed = SOAP(SPECIES, r_cut=4.0, n_max=3, l_max=2, sigma=0.4, species_mixing=mixing).spherical_expansion(atoms)
    for l in range(3):
        np.testing.assert_allclose(mixed[l], np.einsum("sk,isnm->iknm", mixing, plain[l]), atol=1e-12)
    assert SOAP(SPECIES, r_cut=4.0, n_max=3, l_max=2, sigma=0.4, species_mixing=mixing).n_features == 3 * 6 * 7 // 2


def test_bad_input_raises_named_errors():
    soap = SOAP(["Si", "O"], r_cut=4.0, n_max=3, l_max=2, sigma=0.4)
    with pytest.raises(ValueError, match=r"unknown species \['Na'\]"):
        soap.create(Atoms("SiONa", positions=[[0, 0, 0], [1.6, 0, 0], [0, 1.7, 0]]))
    with pytest.raises(ValueError, match="empty structure"):
        soap.create(Atoms())
    with pytest.raises(ValueError, match="coincident atoms"):
        soap.create(Atoms("SiO", positions=[[0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="NaN or inf positions"):
        soap.create(Atoms("SiO", positions=[[0, 0, 0], [np.inf, 0, 0]]))
    with pytest.raises(ValueError, match="degenerate cell"):
        soap.create(Atoms("SiO", positions=[[0, 0, 0], [1.6, 0, 0]], cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True))
    with pytest.raises(ValueError, match="r_cut"):
        SOAP(["Si"], r_cut=50.0)
    with pytest.raises(ValueError, match="unknown species 'Xx'"):
        SOAP(["Si", "Xx"])
    with pytest.raises(ValueError, match="l_max"):
        SOAP(["Si"], l_max=40)
    with pytest.raises(ValueError, match="sigma"):
        SOAP(["Si"], sigma=0.0)
    descriptor = LambdaSOAP(["Si", "O"], r_cut=4.0, n_max=2, l_max=2, sigma=0.4)
    with pytest.raises(ValueError, match="weights must have shape"):
        descriptor.contract(Atoms("Si"), np.ones(3))
