"""The compiled evaluator against the NumPy reference of everything after the expansion
(tests/evaluator_reference.py), and its determinism: shuffled centres and neighbours,
other block sizes and thread counts give bitwise-equal outputs."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from ase import Atoms

from ase_mlnmr.core import evaluator as ev
from ase_mlnmr.core._evaluator import GEMM_WIDTH
from ase_mlnmr.core.neighbours import neighbour_list_from_atoms
from ase_mlnmr.descriptors import LambdaSOAP, SOAP, random_species_mixing
from ase_mlnmr.models.linear import EquivariantRidge, RidgeRegression
from ase_mlnmr.models.nystrom import NystromKernelRidge
from ase_mlnmr.nmr_model import NMRModel, PropertyModel

from conftest import random_structure
from evaluator_reference import reference_outputs

NEIGHBOURS = ["O", "Si", "Na", "Al"]


def _fit_features(descriptor, structures, element):
    return np.concatenate([descriptor.create(a, centres=element) for a in structures])


def build_model(seed: int = 0) -> NMRModel:
    """Every kind of component, on random targets (what is tested is the evaluation):
    Si: Gaussian Nyström σiso (row-normalised) shared with the OOD model, σ(2), σ(1), EFG
    with its own r_cut, calibration; O: dot-product σiso (ζ = 2) on mixed channels, EFG with
    radial scaling, a separate OOD model (own r_cut), 17O; Na: linear σiso, no OOD."""
    rng = np.random.default_rng(seed)
    structures = [random_structure(24, symbols=("Si", "O", "O", "Na"), seed=seed + s, min_distance=1.5)
                  for s in range(3)]
    models = []

    def add(element, prop, descriptor, regressor, n_out):
        features = _fit_features(descriptor, structures, element)
        shape = (len(features),) if n_out == 0 else (len(features), n_out)
        regressor.fit(features, rng.normal(300.0 if prop == "ms_iso" else 0.0, 10.0, size=shape))
        models.append(PropertyModel(element, prop, descriptor, regressor))
        return regressor

    small = dict(n_max=4, l_max=3, sigma=0.45)
    si_soap = SOAP(NEIGHBOURS, r_cut=4.5, **small)
    si_nystrom = add("Si", "ms_iso", si_soap,
                     NystromKernelRidge(n_inducing=30, length_scale=6.0, ridge=1e-4, normalize_features=True), 0)
    add("Si", "ms_aniso", LambdaSOAP(NEIGHBOURS, r_cut=4.5, lam=2, **small), EquivariantRidge(2, alpha=1e-2), 5)
    add("Si", "ms_antisym", LambdaSOAP(NEIGHBOURS, r_cut=4.5, lam=1, two_body=False, **small),
        EquivariantRidge(1, alpha=1e-2), 3)
    add("Si", "efg", LambdaSOAP(NEIGHBOURS, r_cut=3.5, lam=2, **small), EquivariantRidge(2, alpha=1e-2), 5)
    mixing = random_species_mixing(len(NEIGHBOURS), 2, seed=3)
    add("O", "ms_iso", SOAP(NEIGHBOURS, r_cut=5.0, species_mixing=mixing, **small),
        NystromKernelRidge(n_inducing=40, ridge=1e-3, kernel="dot_product", zeta=2), 0)
    add("O", "efg", LambdaSOAP(NEIGHBOURS, r_cut=4.0, lam=2, radial_scaling={"r0": 2.0, "exponent": 4}, **small),
        EquivariantRidge(2, alpha=1e-2), 5)
    add("Na", "ms_iso", SOAP(NEIGHBOURS, r_cut=3.0, **small), RidgeRegression(alpha=1e-2), 0)
    o_soap = SOAP(NEIGHBOURS, r_cut=4.0, **small)
    o_features = _fit_features(o_soap, structures, "O")
    o_ood = NystromKernelRidge(n_inducing=25, length_scale=5.0).fit(o_features, np.zeros(len(o_features)))
    return NMRModel(
        models, {"Si": (si_soap, si_nystrom), "O": (o_soap, o_ood)},
        calibration={"Si": {"slope": 0.98, "sigma_ref": 310.0}}, isotopes={"O": "17O"},
        ood_reference={"Si": rng.uniform(0.0, 0.6, 40), "O": rng.uniform(0.0, 0.6, 35)},
        ood_rank={"Si": 30, "O": 12},
    )


@pytest.fixture(scope="module")
def model():
    return build_model()


def test_build_model_covers_every_component(model):
    assert model.properties_of("Si") == ["ms_iso", "ms_aniso", "ms_antisym", "efg"]
    assert model.ood_models["Si"][1] is model.models[("Si", "ms_iso")].regressor
    evaluator = model.evaluator()
    assert evaluator.element_outputs("Si") == {"ms_iso", "ms_aniso", "ms_antisym", "efg", "ood", "delta_iso"}
    assert evaluator.element_outputs("O") == {"ms_iso", "efg", "ood", "cq"}
    assert evaluator.element_outputs("Na") == {"ms_iso"}
    assert evaluator.cutoff == 5.0


def _test_structures():
    crystal = random_structure(30, symbols=("Si", "O", "O", "Na", "Al"), seed=40, min_distance=1.5)
    cluster = Atoms("SiO2NaO", positions=[[0, 0, 0], [1.6, 0, 0], [0, 1.6, 0.1], [0.2, -0.3, 2.9], [30, 30, 30]],
                    cell=[40, 40, 40], pbc=False)  # the last O has no neighbours
    return [crystal, cluster]


@pytest.mark.parametrize("index", [0, 1])
def test_evaluator_equals_numpy_reference(model, index):
    atoms = _test_structures()[index]
    reference = reference_outputs(model, atoms)
    prediction = model.predict(atoms, unknown_species="skip")
    out = {name: getattr(prediction, name) for name in ("ms", "ms_iso", "delta_iso", "efg", "cq", "eta_q", "ood",
                                                         "ood_residual", "ms_zeta", "ms_eta")}
    out["ms_l2"], out["vzz"] = prediction.ms_aniso, None
    raw = model.evaluator().predict(atoms.numbers, *_csr(atoms, model.evaluator().cutoff), skip_unknown=True)
    out["vzz"], out["efg_l2"] = ev.output_field(raw, "vzz"), ev.output_field(raw, "efg_l2")
    for name, values in out.items():
        expected = reference[name]
        np.testing.assert_array_equal(np.isnan(values), np.isnan(expected), err_msg=name)
        scale = max(np.nanmax(np.abs(expected)), 1e-300)
        np.testing.assert_allclose(np.nan_to_num(values), np.nan_to_num(expected), rtol=0, atol=1e-12 * scale,
                                   err_msg=name)
    if index == 1:
        assert prediction.ood[-1] == 1.0 and prediction.ood_residual[-1] == 1.0   # bare atom: far out of domain


def _csr(atoms, cutoff):
    nl = neighbour_list_from_atoms(atoms, cutoff)
    assert np.array_equal(nl.centres, np.arange(len(atoms)))
    return nl.offsets, nl.vectors, atoms.numbers[nl.neighbours]


def test_bitwise_deterministic_under_shuffles_blocks_and_threads(model):
    # 40 O centres: more than one small block, where OpenBLAS's per-row sums depended on the
    # call's shape before the GEMM width was fixed
    atoms = random_structure(80, symbols=("Si", "O", "O", "Na"), seed=70, min_distance=1.5,
                             cell=np.diag([12.0, 11.0, 12.5]))
    base_evaluator = model.evaluator()
    offsets, vectors, numbers = _csr(atoms, base_evaluator.cutoff)
    base = base_evaluator.predict(atoms.numbers, offsets, vectors, numbers)
    assert np.isfinite(ev.output_field(base, "ood")[atoms.numbers != 11]).all()
    rng = np.random.default_rng(0)
    # shuffled centres, and the neighbours of every centre shuffled
    order = rng.permutation(len(atoms))
    counts = np.diff(offsets)
    new_offsets = np.concatenate([[0], np.cumsum(counts[order])])
    entries = np.concatenate([rng.permutation(np.arange(offsets[i], offsets[i + 1])) for i in order])
    shuffled = base_evaluator.predict(atoms.numbers[order], new_offsets, vectors[entries], numbers[entries])
    np.testing.assert_array_equal(shuffled, base[order])
    # a centre alone, other block sizes, other thread counts
    lone = base_evaluator.predict(atoms.numbers[[7]], offsets[[0, 1]] * 0 + [0, counts[7]],
                                  vectors[offsets[7]:offsets[8]], numbers[offsets[7]:offsets[8]])
    np.testing.assert_array_equal(lone[0], base[7])
    for block_size in (1, 2, 7, 300):
        other = ev.Evaluator(model, block_size=block_size)
        np.testing.assert_array_equal(other.predict(atoms.numbers, offsets, vectors, numbers), base)
    for threads in (2, 3):
        np.testing.assert_array_equal(base_evaluator.predict(atoms.numbers, offsets, vectors, numbers,
                                                             n_threads=threads), base)
    # a longer neighbour list (larger cut-off) changes nothing
    np.testing.assert_array_equal(base_evaluator.predict(atoms.numbers, *_csr(atoms, 7.0)), base)


def test_neighbour_order_is_canonical_for_short_and_long_lists(model):
    # a dense box: centres with at most 64 pairs inside their element's largest r_cut (sorted
    # by insertion) and with more (qsort); each centre's neighbours shuffled, and a copy with
    # the atoms renumbered, give bitwise-equal outputs
    atoms = random_structure(90, symbols=("Si", "O", "O", "Na"), seed=71, min_distance=1.3,
                             cell=np.diag([8.6, 8.4, 8.8]))
    evaluator = model.evaluator()
    offsets, vectors, numbers = _csr(atoms, evaluator.cutoff)
    inside = {"Si": 4.5, "O": 5.0}
    counts = [int(np.sum(np.linalg.norm(vectors[offsets[i]:offsets[i + 1]], axis=1) < inside[atoms[i].symbol]))
              for i in range(len(atoms)) if atoms[i].symbol in inside]
    assert min(counts) <= 64 < max(counts)
    base = evaluator.predict(atoms.numbers, offsets, vectors, numbers)
    rng = np.random.default_rng(1)
    entries = np.concatenate([rng.permutation(np.arange(offsets[i], offsets[i + 1])) for i in range(len(atoms))])
    np.testing.assert_array_equal(evaluator.predict(atoms.numbers, offsets, vectors[entries], numbers[entries]), base)
    order = rng.permutation(len(atoms))
    renumbered = atoms[order]
    np.testing.assert_array_equal(evaluator.predict(renumbered.numbers, *_csr(renumbered, evaluator.cutoff)),
                                  base[order])


def test_work_buffers_kept_between_calls_carry_nothing_over(model):
    # the evaluator reuses its work buffers from call to call (WorkspacePool): calls on other
    # structures, output masks and thread counts in between leave a call's outputs unchanged
    atoms = random_structure(60, symbols=("Si", "O", "O", "Na"), seed=72, min_distance=1.5,
                             cell=np.diag([11.0, 10.5, 11.5]))
    other = random_structure(40, symbols=("O", "Si"), seed=73, min_distance=1.4, cell=np.diag([8.0, 8.5, 9.0]))
    fresh = ev.Evaluator(model).predict(atoms.numbers, *_csr(atoms, 5.0))
    reused = ev.Evaluator(model)
    reused.predict(other.numbers, *_csr(other, 5.0), n_threads=3)
    reused.predict(atoms.numbers, *_csr(atoms, 5.0), want=ev.want_bits(("efg",)))
    reused.predict(other.numbers[::-1].copy(), *_csr(other[::-1], 5.0), want=ev.want_bits(("shielding", "ood")))
    for threads in (1, 2):
        np.testing.assert_array_equal(reused.predict(atoms.numbers, *_csr(atoms, 5.0), n_threads=threads), fresh)


def test_bitwise_deterministic_across_gemm_calls_of_several_widths(model):
    # 480 O and 240 Si centres: the default block makes one 512-row GEMM/TRSM call for O,
    # block 300 a 512-row and a 256-row call, block 7 and a lone centre 256-row calls; an
    # atom's outputs must not depend on the call it lands in nor on its row in it
    atoms = random_structure(80, symbols=("Si", "O", "O", "Na"), seed=71, min_distance=1.5,
                             cell=np.diag([12.0, 11.0, 12.5])).repeat((3, 2, 2))
    atoms.positions += np.random.default_rng(2).normal(scale=0.05, size=atoms.positions.shape)
    offsets, vectors, numbers = _csr(atoms, model.evaluator().cutoff)
    base = model.evaluator().predict(atoms.numbers, offsets, vectors, numbers)
    assert np.count_nonzero(atoms.numbers == 8) > 2 * GEMM_WIDTH - 64
    for block_size in (7, 300):
        other = ev.Evaluator(model, block_size=block_size)
        np.testing.assert_array_equal(other.predict(atoms.numbers, offsets, vectors, numbers), base)
    reverse = np.arange(len(atoms))[::-1]   # every centre in another row of its call
    counts = np.diff(offsets)
    entries = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in reverse])
    np.testing.assert_array_equal(
        model.evaluator().predict(atoms.numbers[reverse], np.concatenate([[0], np.cumsum(counts[reverse])]),
                                  vectors[entries], numbers[entries]), base[reverse])
    for i in np.flatnonzero(atoms.numbers == 8)[[0, -1]]:
        lone = model.evaluator().predict(atoms.numbers[[i]], [0, counts[i]], vectors[offsets[i]:offsets[i + 1]],
                                         numbers[offsets[i]:offsets[i + 1]])
        np.testing.assert_array_equal(lone[0], base[i])


def test_singular_ood_factor_is_refused_when_the_evaluator_is_built(model):
    descriptor, nystrom = model.ood_models["O"]
    broken = copy.copy(nystrom)
    broken.chol_zz_ = nystrom.chol_zz_.copy()
    broken.chol_zz_[3, 3] = 0.0
    singular = NMRModel(list(model.models.values()), {"O": (descriptor, broken)}, ood_rank={"O": 12})
    with pytest.raises(ValueError, match=r"OOD model's Cholesky factor is singular \(zero pivot 4 of 12\)"):
        ev.Evaluator(singular)


def test_output_mask(model):
    atoms = _test_structures()[0]
    evaluator = model.evaluator()
    csr = _csr(atoms, evaluator.cutoff)
    full = evaluator.predict(atoms.numbers, *csr, skip_unknown=True)
    efg_only = evaluator.predict(atoms.numbers, *csr, want=ev.WANT_EFG, skip_unknown=True)
    for name, (offset, width, _) in ev.OUTPUT_FIELDS.items():
        block = efg_only[:, offset:offset + width]
        if name in ("efg", "efg_l2", "vzz", "eta_q", "cq"):
            np.testing.assert_array_equal(block, full[:, offset:offset + width])
        else:
            assert np.isnan(block).all(), name


def test_ood_prefix_equals_the_model_residual_on_the_leading_pivots(model):
    atoms = _test_structures()[0]
    descriptor, nystrom = model.ood_models["O"]
    o = np.flatnonzero(atoms.numbers == 8)
    expected = nystrom.out_of_domain(descriptor.create(atoms, centres=o), rank=12)
    got = model.predict(atoms, unknown_species="skip").ood_residual[o]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert model.evaluator().ood_rank("O") == 12


def test_unknown_centre_element_raises_or_is_skipped(model):
    atoms = _test_structures()[0]
    evaluator = model.evaluator()
    csr = _csr(atoms, evaluator.cutoff)
    with pytest.raises(ValueError, match=r"no model for element Al of centre \d+"):
        evaluator.predict(atoms.numbers, *csr)
    out = evaluator.predict(atoms.numbers, *csr, skip_unknown=True)
    assert np.isnan(out[atoms.numbers == 13]).all()
    assert np.isfinite(ev.output_field(out, "ms_iso")[atoms.numbers != 13]).all()


def test_bad_neighbour_input_names_the_centre_and_pair(model):
    evaluator = model.evaluator()
    vectors = np.array([[1.8, 0.0, 0.0], [0.0, 1.7, 0.0]])
    numbers = np.array([8, 8])
    with pytest.raises(ValueError, match=r"NaN or inf.*centre 0, neighbour entry 1"):
        evaluator.predict([14], [0, 2], np.array([[1.8, 0, 0], [np.nan, 0, 0]]), numbers)
    with pytest.raises(ValueError, match=r"coincident.*centre 0, neighbour entry 0"):
        evaluator.predict([14], [0, 2], np.array([[1e-6, 0, 0], [0, 1.7, 0]]), numbers)
    with pytest.raises(ValueError, match=r"unknown species \['Ca'\] within r_cut of centre 0"):
        evaluator.predict([14], [0, 2], vectors, [8, 20])
    # beyond every r_cut an unknown neighbour element does not matter
    far = evaluator.predict([14], [0, 2], np.array([[1.8, 0, 0], [9.0, 0, 0]]), [8, 20])
    near = evaluator.predict([14], [0, 1], vectors[:1], numbers[:1])
    np.testing.assert_array_equal(far, near)
    with pytest.raises(ValueError, match="offsets"):
        evaluator.predict([14], [0, 3], vectors, numbers)


def test_single_precision_kernel_block_close_to_float64(model):
    atoms = _test_structures()[0]
    double = model.predict(atoms, unknown_species="skip")
    single = model.predict(atoms, unknown_species="skip", single_precision=True)
    si_o = np.isin(atoms.numbers, [8, 14])
    spread = np.nanstd(double.ms_iso[si_o])
    assert 0 < np.nanmax(np.abs(single.ms_iso - double.ms_iso)[si_o]) < 1e-4 * spread
    assert np.nanmax(np.abs(single.ood_residual - double.ood_residual)) < 1e-4
    np.testing.assert_array_equal(single.efg, double.efg)   # λ-models stay in float64
