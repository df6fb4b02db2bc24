"""Cross-check of the SOAP descriptors against featomic 0.6.7 with the same basis.

featomic is set up with the hyper-parameters that define our descriptors
(``NMR_CONVENTIONS.md``, "Descriptors"). The names below were read from the installed
featomic 0.6.7 (``featomic.cutoff``, ``featomic.density``, ``featomic.basis``,
``featomic.splines``):

* ``Cutoff(radius=rc, smoothing=ShiftedCosine(width=rc))``: featomic's shifted cosine is
  ``½(1 + cos(π(r − rc + w)/w))`` on [rc − w, rc], so ``width = rc`` gives our
  ``fc(r) = ½(cos(πr/rc) + 1)`` over the whole sphere;
* ``Gaussian(width=σ, center_atom_weight=0)``: ``width`` is the standard deviation;
  featomic normalises the Gaussian to unit L2 norm, ``(πσ²)^(-3/4)``, where we use unit
  integral, ``(2πσ²)^(-3/2)``; weight 0 drops the centre atom from its own density, as
  ours does;
* ``SphericalBessel(angular_channel=l, max_radial=n_max − 1, radius=rc)``: j_l at the
  zeros of j_l. It has no native hyper-parameters: the radial integral goes through
  ``SoapSpliner`` and an ``Explicit`` basis (one radial basis per l), which featomic
  orthonormalises numerically (Löwdin, r² weight on [0, rc]).

What the maps turn out to be: the j_l functions at the zeros of j_l are already
orthogonal with the r² weight, so the Löwdin step only normalises them and featomic's
radial basis *is* ours. Per (species, l) the least-squares n×n map shared by all m is
``k·I`` with ``k = 2^(3/2) (πσ²)^(3/4)`` (the ratio of the two Gaussian normalisations):
no radial mixing, and the same real harmonics (order m = −l..l, same signs). The power
spectrum differs per feature by ``k² (−1)^l / √(2l+1)`` (featomic couples to λ = 0 with
Clebsch–Gordan coefficients), times 1/√2 on same-species n1 ≠ n2 entries (featomic
stores both orders without the √2 we put on the upper triangle). The λ = 2 features
(three-body part) map onto featomic's Clebsch–Gordan product of the same expansion with
one map shared by the five μ components.
"""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

featomic = pytest.importorskip("featomic")
metatensor = pytest.importorskip("metatensor")
pytest.importorskip("scipy")

from featomic.basis import Explicit, SphericalBessel  # noqa: E402
from featomic.cutoff import Cutoff, ShiftedCosine  # noqa: E402
from featomic.density import Gaussian  # noqa: E402
from featomic.splines import SoapSpliner  # noqa: E402

from ase_mlnmr.descriptors import LambdaSOAP, SOAP  # noqa: E402

SPECIES = [8, 11, 14]  # O, Na, Si: ascending atomic number, as featomic orders its keys
R_CUT, N_MAX, L_MAX, SIGMA = 4.0, 4, 3, 0.5
# featomic Gaussian (πσ²)^(-3/4) over ours (2πσ²)^(-3/2)
GAUSSIAN_RATIO = 2.0**1.5 * (np.pi * SIGMA**2) ** 0.75
R2_MIN = 0.9999


def _structure(seed: int) -> Atoms:
    """24–48 atoms, 2 or 3 species, on a rattled lattice in a random triclinic cell."""
    rng = np.random.default_rng(seed)
    grid = [(3, 3, 3), (3, 4, 3), (4, 3, 4), (2, 3, 4), (4, 4, 3)][seed % 5]
    spacing = rng.uniform(2.0, 2.4)
    cell = np.diag(np.array(grid) * spacing) + rng.uniform(-0.8, 0.8, size=(3, 3)) * (1 - np.eye(3))
    fractional = np.stack(np.meshgrid(*[np.arange(g) / g for g in grid], indexing="ij"), -1).reshape(-1, 3)
    species = SPECIES if seed % 3 else SPECIES[:2]  # every third structure has O and Na only
    atoms = Atoms(numbers=rng.choice(species, len(fractional)), scaled_positions=fractional, cell=cell, pbc=True)
    atoms.rattle(0.35, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def structures() -> list[Atoms]:
    return [_structure(seed) for seed in range(24)]


@pytest.fixture(scope="module")
def featomic_hypers() -> dict:
    spliner = SoapSpliner(
        cutoff=Cutoff(radius=R_CUT, smoothing=ShiftedCosine(width=R_CUT)),
        density=Gaussian(width=SIGMA, center_atom_weight=0.0),
        basis=Explicit(
            by_angular={
                l: SphericalBessel(angular_channel=l, max_radial=N_MAX - 1, radius=R_CUT) for l in range(L_MAX + 1)
            },
            spline_accuracy=None,
        ),
        # a fixed grid: ~1 s instead of ~5 s for the adaptive 1e-8 spline, error ~1e-8
        n_spline_points=128,
    )
    return spliner.get_hypers()


def _rows(block, structures) -> np.ndarray:
    """Row of each (system, atom) sample of a featomic block in our stacked centre order."""
    start = np.cumsum([0] + [len(atoms) for atoms in structures])
    return start[block.samples.column("system")] + block.samples.column("atom")


@pytest.fixture(scope="module")
def expansions(structures, featomic_hypers):
    """Ours and featomic's c_{nlm}, per l: arrays (n_centres, n_species, 2l+1, n_max)."""
    ours_calc = SOAP(SPECIES, R_CUT, N_MAX, L_MAX, SIGMA)
    blocks = [ours_calc.spherical_expansion(atoms) for atoms in structures]
    ours = [np.concatenate([b[l] for b in blocks]).transpose(0, 1, 3, 2) for l in range(L_MAX + 1)]
    tensor = featomic.SphericalExpansion(**featomic_hypers).compute(structures)
    n_centres = len(ours[0])
    theirs = [np.zeros((n_centres, len(SPECIES), 2 * l + 1, N_MAX)) for l in range(L_MAX + 1)]
    for key, block in tensor.items():
        theirs[key["o3_lambda"]][_rows(block, structures), SPECIES.index(key["neighbor_type"])] = block.values
    return ours, theirs


def _fit(x: np.ndarray, y: np.ndarray, train: np.ndarray | None = None):
    """Least-squares y ≈ x A (fitted on the ``train`` rows); global and worst per-column R²."""
    rows = slice(None) if train is None else train
    a, *_ = np.linalg.lstsq(x[rows], y[rows], rcond=None)
    test = slice(None) if train is None else ~train
    residual = ((x[test] @ a - y[test]) ** 2).sum(axis=0)
    total = ((y[test] - y[test].mean(axis=0)) ** 2).sum(axis=0)
    keep = total > 1e-12 * total.max()
    return a, 1.0 - residual.sum() / total.sum(), (1.0 - residual[keep] / total[keep]).min()


def test_spherical_expansion_maps_linearly(expansions):
    ours, theirs = expansions
    n_centres = len(ours[0])
    assert n_centres > 500
    for l in range(L_MAX + 1):
        for s, z in enumerate(SPECIES):
            # rows: (centre, m); columns: n. One n×n map shared by every m and centre.
            x = ours[l][:, s].reshape(-1, N_MAX)
            y = theirs[l][:, s].reshape(-1, N_MAX)
            assert np.abs(y).max() > 1e-3, f"featomic gave no density for Z={z}, l={l}"
            a, r2, r2_worst = _fit(x, y)
            assert r2 > R2_MIN and r2_worst > R2_MIN, f"Z={z} l={l}: R²={r2}, worst column {r2_worst}"
            # featomic's orthonormalised spherical Bessel basis is ours: a is k·identity
            np.testing.assert_allclose(a, GAUSSIAN_RATIO * np.eye(N_MAX), atol=1e-5 * GAUSSIAN_RATIO)
    # and therefore elementwise agreement, up to featomic's spline error (~1e-8)
    for l in range(L_MAX + 1):
        scale = np.abs(theirs[l]).max()
        np.testing.assert_allclose(GAUSSIAN_RATIO * ours[l], theirs[l], rtol=0, atol=1e-6 * scale)


def _featomic_power_spectrum(structures, hypers) -> np.ndarray:
    """featomic power spectrum, one row per centre: every (Z1 <= Z2) pair, zero if absent."""
    tensor = featomic.SoapPowerSpectrum(**hypers).compute(structures)
    pairs = [(a, b) for i, a in enumerate(SPECIES) for b in SPECIES[i:]]
    width = (L_MAX + 1) * N_MAX * N_MAX
    dense = np.zeros((sum(len(atoms) for atoms in structures), len(pairs), width))
    for key, block in tensor.items():
        assert block.values.shape[1] == width
        dense[_rows(block, structures), pairs.index((key["neighbor_1_type"], key["neighbor_2_type"]))] = block.values
    return dense.reshape(len(dense), -1)


def test_power_spectrum_maps_linearly(structures, featomic_hypers):
    descriptor = SOAP(SPECIES, R_CUT, N_MAX, L_MAX, SIGMA)
    ours = descriptor.create(structures)
    theirs = _featomic_power_spectrum(structures, featomic_hypers)
    n_centres, n_ours = ours.shape
    assert n_centres > 2 * n_ours, "need many more centres than features for a meaningful fit"
    # dense map over all features, fitted on two thirds of the centres, scored on the rest
    train = np.random.default_rng(0).random(n_centres) < 2 / 3
    _, r2, r2_worst = _fit(ours, theirs, train)
    assert r2 > R2_MIN, f"held-out R² {r2}"
    assert r2_worst > R2_MIN, f"held-out worst per-feature R² {r2_worst}"
    # the map is the one stated in the module docstring, feature by feature
    m = len(SPECIES) * N_MAX
    expected = np.empty_like(ours)
    pairs = [(a, b) for i, a in enumerate(SPECIES) for b in SPECIES[i:]]
    theirs = theirs.reshape(n_centres, len(pairs), L_MAX + 1, N_MAX, N_MAX)
    column = 0
    for l in range(L_MAX + 1):
        for a in range(m):
            for b in range(a, m):
                (s1, n1), (s2, n2) = divmod(a, N_MAX), divmod(b, N_MAX)
                factor = GAUSSIAN_RATIO**2 * (-1) ** l / np.sqrt(2 * l + 1)
                if s1 == s2 and n1 != n2:
                    factor /= np.sqrt(2.0)
                expected[:, column] = theirs[:, pairs.index((SPECIES[s1], SPECIES[s2])), l, n1, n2] / factor
                column += 1
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * np.abs(ours).max())


def test_lambda2_features_map_linearly(structures, featomic_hypers):
    """λ = 2 three-body features against featomic's Clebsch–Gordan product of the same expansion.

    ``EquivariantPowerSpectrum`` in 0.6.7 only accepts a ``TensorProduct`` basis, so the
    product is formed with the public ``ClebschGordanProduct`` on the spherical Bessel
    expansion, which is what ``EquivariantPowerSpectrum`` does internally.
    """
    from featomic.clebsch_gordan import ClebschGordanProduct

    descriptor = LambdaSOAP(SPECIES, R_CUT, N_MAX, L_MAX, SIGMA, lam=2, two_body=True)
    m = descriptor.n_channels * N_MAX
    ours = descriptor.create(structures)[:, :, m:]  # drop the two-body c_{a2μ} block
    neighbour_labels = metatensor.Labels(["neighbor_type"], np.array(SPECIES).reshape(-1, 1))
    density = featomic.SphericalExpansion(**featomic_hypers).compute(structures)
    density = density.keys_to_properties(neighbour_labels)  # every species, zeros where absent
    density_1 = metatensor.rename_dimension(density, "properties", "n", "n_1")
    density_1 = metatensor.rename_dimension(density_1, "properties", "neighbor_type", "neighbor_1_type")
    density_2 = metatensor.rename_dimension(density, "properties", "n", "n_2")
    density_2 = metatensor.rename_dimension(density_2, "properties", "neighbor_type", "neighbor_2_type")
    selection = metatensor.Labels(["o3_lambda", "o3_sigma"], np.array([[2, 1]]))
    tensor = ClebschGordanProduct(max_angular=2 * L_MAX).compute(density_1, density_2, "l_1", "l_2", selected_keys=selection)
    tensor = tensor.keys_to_properties(["l_1", "l_2"])  # both (l1, l2) orders: a redundant but equivalent set
    n_centres = len(ours)
    theirs = np.zeros((n_centres, 5, tensor.block(0).values.shape[2]))
    for _, block in tensor.items():
        theirs[_rows(block, structures)] = block.values
    # one map shared by the five μ components: rows (centre, μ)
    x = ours.reshape(n_centres * 5, -1)
    y = theirs.reshape(n_centres * 5, -1)
    assert len(x) > 4 * x.shape[1]
    train = np.repeat(np.random.default_rng(1).random(n_centres) < 2 / 3, 5)
    _, r2, r2_worst = _fit(x, y, train)
    assert r2 > R2_MIN, f"held-out R² {r2}"
    assert r2_worst > R2_MIN, f"held-out worst per-feature R² {r2_worst}"
    # and the reverse direction: featomic's features span ours (nothing of ours is lost)
    _, r2_back, r2_back_worst = _fit(y, x, train)
    assert r2_back > R2_MIN and r2_back_worst > R2_MIN, (r2_back, r2_back_worst)
