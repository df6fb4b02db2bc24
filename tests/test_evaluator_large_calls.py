"""Bitwise determinism of the evaluator's BLAS calls at sizes the small test models never
reach: a kernel block of more than 1024 centres, an OOD residual over several GEMM blocks
of L_p⁻¹ (p = 300; OpenBLAS's triangular product, used before, summed a column differently
depending on its place in the call), and committee members by GEMM (24 members × 450
inducing points). An atom's outputs must not
depend on the call it lands in, its row in the call, nor the block size; the OOD residual
must still equal the NumPy reference 1 − |L_p⁻¹ k_p|²."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.core import evaluator as ev
from ase_mlnmr.core._evaluator import MIN_GEMM_ROWS, OOD_BLOCK_ROWS, SMALL_SHAPE
from ase_mlnmr.core.neighbours import neighbour_list_from_atoms
from ase_mlnmr.descriptors import SOAP
from ase_mlnmr.models.nystrom import NystromKernelRidge
from ase_mlnmr.nmr_model import NMRModel, PropertyModel

from conftest import random_structure

N_INDUCING, OOD_RANK, MEMBERS = 450, 300, 24


@pytest.fixture(scope="module")
def structure():
    """About 1300 O centres: one call of more than 1024 rows at the default block size."""
    atoms = random_structure(36, symbols=("Si", "O", "O"), seed=5, min_distance=1.5,
                             cell=np.diag([8.0, 8.0, 8.5])).repeat((4, 4, 4))
    atoms.positions += np.random.default_rng(3).normal(scale=0.1, size=atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def model(structure):
    rng = np.random.default_rng(11)
    soap = SOAP(["O", "Si"], r_cut=3.5, n_max=3, l_max=2, sigma=0.5)
    X = soap.create(structure, centres="O")
    x_mean, x_scale = X.mean(axis=0), np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    Z = ((X - x_mean) / x_scale)[rng.choice(len(X), N_INDUCING, replace=False)]
    length_scale = float(np.sqrt(X.shape[1]))
    z2 = np.einsum("ij,ij->i", Z, Z)
    kzz = np.exp(-np.maximum(z2[:, None] + z2[None, :] - 2 * Z @ Z.T, 0) / (2 * length_scale**2))
    chol = np.linalg.cholesky(kzz + 1e-3 * np.eye(N_INDUCING))
    weights = rng.normal(size=(N_INDUCING, 1)) / N_INDUCING
    arrays = {"inducing_points": Z, "inducing_indices": np.arange(N_INDUCING), "weights": weights,
              "chol_zz_packed": chol[np.tril_indices(N_INDUCING)], "x_mean": x_mean, "x_scale": x_scale,
              "y_mean": np.array([300.0]), "y_std": np.array([20.0]),
              "member_weights": weights[None] + rng.normal(scale=1e-3, size=(MEMBERS, N_INDUCING, 1))}
    params = {"n_inducing": N_INDUCING, "length_scale": length_scale, "ridge": 1e-3, "kernel": "gaussian",
              "target_ndim": 1, "n_train": len(X), "committee_calibration": 1.3}
    nystrom = NystromKernelRidge.from_arrays(arrays, params)
    return NMRModel([PropertyModel("O", "ms_iso", soap, nystrom)], {"O": (soap, nystrom)},
                    ood_rank={"O": OOD_RANK})


def _csr(atoms, cutoff):
    nl = neighbour_list_from_atoms(atoms, cutoff)
    return atoms.numbers[nl.centres], nl.offsets, nl.vectors, atoms.numbers[nl.neighbours]


def test_the_model_takes_the_blas_paths(model):
    # members and every block of the residual are products above SMALL_SHAPE per row: BLAS
    blocks = -(-OOD_RANK // OOD_BLOCK_ROWS)
    assert MEMBERS * N_INDUCING > SMALL_SHAPE and (OOD_RANK // blocks) ** 2 > SMALL_SHAPE
    # ... and with at least MIN_GEMM_ROWS rows they are above OpenBLAS's small-matrix limit
    assert MIN_GEMM_ROWS * SMALL_SHAPE > 100**3
    assert model.evaluator().ood_rank("O") == OOD_RANK


def test_large_calls_are_bitwise_deterministic(model, structure):
    centres, offsets, vectors, numbers = _csr(structure, model.evaluator().cutoff)
    assert np.count_nonzero(structure.numbers == 8) > 1024
    base = model.evaluator().predict(centres, offsets, vectors, numbers, skip_unknown=True)
    for name in ("ms_iso", "ood_residual", "ms_iso_std"):
        assert np.isfinite(ev.output_field(base, name)[structure.numbers == 8]).all(), name
    for block_size in (7, 300, 1000):
        other = ev.Evaluator(model, block_size=block_size)
        np.testing.assert_array_equal(other.predict(centres, offsets, vectors, numbers, skip_unknown=True), base)
    reverse = np.arange(len(structure))[::-1]    # every centre in another row of its call
    counts = np.diff(offsets)
    entries = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in reverse])
    np.testing.assert_array_equal(
        model.evaluator().predict(centres[reverse], np.concatenate([[0], np.cumsum(counts[reverse])]),
                                  vectors[entries], numbers[entries], skip_unknown=True), base[reverse])
    for i in np.flatnonzero(structure.numbers == 8)[[0, 500, -1]]:
        lone = model.evaluator().predict(centres[[i]], [0, counts[i]], vectors[offsets[i]:offsets[i + 1]],
                                         numbers[offsets[i]:offsets[i + 1]], skip_unknown=True)
        np.testing.assert_array_equal(lone[0], base[i])
    np.testing.assert_array_equal(model.evaluator().predict(centres, offsets, vectors, numbers, skip_unknown=True, n_threads=2), base)


def test_blocked_ood_residual_equals_numpy_reference(model, structure):
    """1 − |L_p⁻¹ k_p|² by a triangular solve in NumPy/SciPy on the same kernel values."""
    from scipy.linalg import solve_triangular

    soap, nystrom = model.ood_models["O"]
    oxygen = np.flatnonzero(structure.numbers == 8)[::13]
    X = (soap.create(structure, centres=oxygen) - nystrom.x_mean_) / nystrom.x_scale_
    Z = nystrom.inducing_points_[:OOD_RANK]
    d2 = np.einsum("ij,ij->i", X, X)[:, None] + np.einsum("ij,ij->i", Z, Z)[None] - 2 * X @ Z.T
    k = np.exp(-np.maximum(d2, 0) / (2 * nystrom.length_scale**2))
    phi = solve_triangular(nystrom.chol_zz_[:OOD_RANK, :OOD_RANK], k.T, lower=True)
    expected = np.clip(1.0 - np.einsum("ij,ij->j", phi, phi), 0.0, 1.0)
    got = model.predict(structure, unknown_species="skip").ood_residual[oxygen]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-11)


def test_python_threads_get_the_one_call_outputs(model, structure):
    """Two Python threads predicting at once (not the main thread, whose process-wide BLAS
    setting they do not share) get the one-call outputs bitwise, and the BLAS thread count
    is the caller's again afterwards."""
    import threading

    from threadpoolctl import threadpool_info

    from ase_mlnmr.core._evaluator import blas_threads_per_call

    assert blas_threads_per_call()   # scipy's OpenBLAS has openblas_set_num_threads_local

    def blas_threads():
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]

    before = blas_threads()
    centres, offsets, vectors, numbers = _csr(structure, model.evaluator().cutoff)
    base = model.evaluator().predict(centres, offsets, vectors, numbers, skip_unknown=True)
    results = [None, None]

    def run(k):
        results[k] = ev.Evaluator(model, block_size=300 + k).predict(centres, offsets, vectors, numbers,
                                                                     skip_unknown=True)

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_array_equal(result, base)
    assert blas_threads() == before
