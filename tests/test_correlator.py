"""The streaming multiple-tau correlator of the core, against an independent NumPy
implementation of its definition (block averages of m^k samples, products at block lags)."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.core._correlator import CorrelatorError, StreamingCorrelator, normalised_correlation, plateau


def block_average_reference(x: np.ndarray, p: int, m: int, n_levels: int, fluctuation: bool):
    """Per-lag sums of one atom's series x (n, d) by the definition: level k correlates the
    averages of complete blocks of m^k samples at block lags 0..p−1 (k = 0) or p/m..p−1."""
    mean = x.mean(axis=0)
    sums, counts, lags = [], [], []
    for level in range(n_levels):
        size = m**level
        n_blocks = len(x) // size
        y = x[: n_blocks * size].reshape(n_blocks, size, -1).mean(axis=1)
        if fluctuation:
            y = y - mean
        for j in range(0 if level == 0 else p // m, p):
            lags.append(j * size)
            if j >= n_blocks:
                sums.append(0.0)
                counts.append(0.0)
                continue
            sums.append(float(np.sum(y[j:] * y[: n_blocks - j])))
            counts.append(float(n_blocks - j))
    return np.array(sums), np.array(counts), np.array(lags, dtype=float)


@pytest.mark.parametrize("fluctuation", [False, True])
@pytest.mark.parametrize("dim", [5, 1])
def test_lag_sums_match_block_average_definition(dim, fluctuation):
    rng = np.random.default_rng(1)
    p, m, n_levels, n = 8, 2, 5, 333
    series = rng.normal(size=(n, dim)) + 0.7
    corr = StreamingCorrelator([dim], [3], dt_fs=0.5, p=p, m=m, n_levels=n_levels)
    for t in range(n):
        corr.add(0, 3 * t, [42], [0], series[t][None, :])
    sums, counts = corr.reduce(fluctuation=fluctuation)
    ref_sums, ref_counts, ref_lags = block_average_reference(series, p, m, n_levels, fluctuation)
    np.testing.assert_array_equal(counts[0, 0, 0], ref_counts)
    np.testing.assert_allclose(sums[0, 0, 0], ref_sums, rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(corr.lags_fs(0), ref_lags * 3 * 0.5)


def _feed(corr, series, ids, groups, steps, channel=0):
    for t, step in enumerate(steps):
        corr.add(channel, step, ids, groups, series[:, t])


def _random_series(n_atoms=7, n_frames=150, dim=5, seed=2):
    return np.random.default_rng(seed).normal(size=(n_atoms, n_frames, dim))


def test_save_restore_mid_series_is_exact():
    series = _random_series()
    ids, groups = np.array([11, 4, 7, 30, 2, 9, 5]), np.array([0, 1, 0, 1, 0, 0, 1])
    steps = 10 * np.arange(series.shape[1])
    whole = StreamingCorrelator([5], [10], 1.0, p=8, m=2, n_levels=6, n_groups=2)
    _feed(whole, series, ids, groups, steps)
    first = StreamingCorrelator([5], [10], 1.0, p=8, m=2, n_levels=6, n_groups=2)
    _feed(first, series[:, :77], ids, groups, steps[:77])
    saved_global, saved_atoms = first.pack_global(), first.pack_all()
    del first
    resumed = StreamingCorrelator.from_global_state(saved_global)
    for state in saved_atoms[::-1]:
        resumed.unpack_atom(state)
    _feed(resumed, series[:, 77:], ids, groups, steps[77:])
    for blocks in (1, 3):
        for fluctuation in (False, True):
            a, b = whole.reduce(blocks, fluctuation), resumed.reduce(blocks, fluctuation)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_migration_between_correlators_and_id_order_reduction():
    """Atoms moving between two 'ranks' mid-run; gathered states reduce bitwise like one
    correlator that saw every atom, whatever the order atoms were inserted in."""
    series = _random_series(n_atoms=9, n_frames=120, dim=1, seed=3)
    ids = np.array([8, 3, 12, 1, 5, 21, 6, 2, 9])
    groups = np.zeros(9, dtype=int)
    steps = np.arange(120)
    reference = StreamingCorrelator([1], [1], 2.0, p=4, m=2, n_levels=5)
    order = np.argsort(-ids)
    _feed(reference, series[order], ids[order], groups, steps)
    ranks = [StreamingCorrelator([1], [1], 2.0, p=4, m=2, n_levels=5) for _ in range(2)]
    owner = np.arange(9) % 2
    for t in steps:
        if t == 60:  # atoms 0..3 migrate
            for atom in range(4):
                state = ranks[owner[atom]].pack_atom(ids[atom], remove=True)
                owner[atom] = 1 - owner[atom]
                ranks[owner[atom]].unpack_atom(state)
        for rank in range(2):
            mine = owner == rank
            ranks[rank].add(0, t, ids[mine], groups[mine], series[mine, t])
    assert ranks[0].n_atoms + ranks[1].n_atoms == 9
    gathered = np.concatenate([ranks[1].pack_all(), ranks[0].pack_all()])
    for blocks in (1, 4):
        a, b = reference.reduce(blocks), reference.reduce(blocks, states=gathered)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_state_size_formula_and_lags():
    p, m, levels = 16, 2, 10
    corr = StreamingCorrelator([5, 1], [5, 50], 1.0, p=p, m=m, n_levels=levels, fluctuation_sums=True)
    n_lag = p + (levels - 1) * (p - p // m)
    expected = 4 + sum(2 + d + levels * (2 + d + p * d) + n_lag * (2 + 2 * d) for d in (5, 1))
    assert corr.n_lags == n_lag and corr.state_size == expected
    lean = StreamingCorrelator([5, 1], [5, 50], 1.0, p=p, m=m, n_levels=levels, fluctuation_sums=False)
    assert lean.state_size == 4 + sum(2 + d + levels * (2 + d + p * d) + n_lag * 2 for d in (5, 1))
    assert corr.lags_fs(0)[-1] == (p - 1) * m ** (levels - 1) * 5
    with pytest.raises(CorrelatorError, match="fluctuation"):
        lean.reduce(fluctuation=True)


def test_bad_input_is_reported_and_leaves_state_unchanged():
    corr = StreamingCorrelator([5], [2], 1.0, p=4, m=2, n_levels=3, n_groups=2)
    ids, groups = np.array([1, 2]), np.array([0, 1])
    corr.add(0, 0, ids, groups, np.ones((2, 5)))
    before = corr.pack_all()
    with pytest.raises(CorrelatorError, match="atom id 1.*previous step plus the channel's interval"):
        corr.add(0, 3, ids, groups, np.ones((2, 5)))
    bad = np.ones((2, 5))
    bad[1, 3] = np.nan
    with pytest.raises(CorrelatorError, match="atom id 2.*non-finite"):
        corr.add(0, 2, ids, groups, bad)
    with pytest.raises(CorrelatorError, match="group"):
        corr.add(0, 2, ids, [1, 1], np.ones((2, 5)))
    with pytest.raises(CorrelatorError, match="given twice"):
        corr.add(0, 2, [1, 1], [0, 0], np.ones((2, 5)))
    with pytest.raises(CorrelatorError, match="channel"):
        corr.add(3, 2, ids, groups, np.ones((2, 5)))
    with pytest.raises(ValueError, match="values of shape"):
        corr.add(0, 2, ids, groups, np.ones((2, 4)))
    np.testing.assert_array_equal(corr.pack_all(), before)
    with pytest.raises(CorrelatorError, match="already present"):
        corr.unpack_atom(before[0])
    with pytest.raises(CorrelatorError, match="does not belong"):
        corr.unpack_atom(np.zeros(corr.state_size))
    with pytest.raises(CorrelatorError, match="no state"):
        corr.pack_atom(99)
    with pytest.raises(CorrelatorError, match="does not belong"):
        StreamingCorrelator.from_global_state(np.zeros(len(corr.pack_global())))
    for kwargs in ({"p": 5, "m": 2}, {"m": 1}, {"n_levels": 0}, {"n_groups": 0}):
        with pytest.raises(ValueError, match="invalid correlator configuration"):
            StreamingCorrelator([5], [1], 1.0, **kwargs)
    with pytest.raises(ValueError, match="invalid correlator configuration"):
        StreamingCorrelator([5], [0], 1.0)
    with pytest.raises(ValueError, match="invalid correlator configuration"):
        StreamingCorrelator([5], [1], float("nan"))


def test_plateau_rule_on_an_exact_exponential():
    """G = P + (1 − P) exp(−s/τ) given exactly: the automatic window starts at 8 τ½ and the
    trapezoid mean is P up to the residual exponential; an override window is honoured."""
    lags = np.arange(0, 4001, 1.0)
    plateau_value, tau = 0.6, 25.0
    g = plateau_value + (1 - plateau_value) * np.exp(-lags / tau)
    counts = np.full_like(lags, 100.0)
    found = plateau(lags, g * counts, counts, half_span_fs=2000.0)
    half_time = np.ceil(tau * np.log(2.0))  # first lag with G <= (1 + P)/2
    assert found["window_fs"] == (8 * half_time, 2000.0)
    assert found["P"] == pytest.approx(plateau_value, abs=1e-4)
    assert np.isnan(found["P_err"])
    forced = plateau(lags, g * counts, counts, 2000.0, window_fs=(10.0, 20.0))
    expected = np.trapezoid(g[10:21], lags[10:21]) / 10.0
    assert forced["P"] == pytest.approx(expected, rel=1e-12)
    blocks = np.stack([g * counts, (g + 0.1) * counts])
    two = plateau(lags, blocks, np.stack([counts, counts]), 2000.0, window_fs=(500.0, None))
    window = (lags >= 500) & (lags <= 2000)
    p_first = np.trapezoid(g[window], lags[window]) / 1500.0
    p_second = np.trapezoid((g[window] + 0.1) / 1.1, lags[window]) / 1500.0
    assert two["P_err"] == pytest.approx(abs(p_first - p_second) / 2, rel=1e-9)
    assert two["P"] == pytest.approx(plateau(lags, blocks.sum(0), 2 * counts, 2000.0, (500.0, None))["P"], rel=1e-14)
    with pytest.raises(CorrelatorError, match="no lags inside the plateau window"):
        plateau(lags, g * counts, counts, 2000.0, window_fs=(3000.0, 3500.0))
    with pytest.raises(ValueError, match="start < end"):
        plateau(lags, g * counts, counts, 2000.0, window_fs=(30.0, 20.0))


def test_normalised_correlation_definition():
    sums = np.array([[4.0, 2.0, 1.0], [4.0, 2.0, 0.0]])
    counts = np.array([[2.0, 1.0, 1.0], [2.0, 1.0, 0.0]])
    np.testing.assert_allclose(normalised_correlation(sums, counts), [1.0, 1.0, 0.5])


def test_many_migrations_keep_every_atom_findable():
    """Random arrivals and departures (the id table's insert and backward-shift delete,
    slot moves on removal) against a plain dict of the states that should be present."""
    rng = np.random.default_rng(11)
    source = StreamingCorrelator([1], [1], 1.0, p=4, m=2, n_levels=2)
    ids = rng.choice(10**9, size=600, replace=False)
    source.add(0, 0, ids, np.zeros(600, dtype=int), rng.normal(size=(600, 1)))
    states = {int(i): source.pack_atom(int(i)) for i in ids}
    target = StreamingCorrelator([1], [1], 1.0, p=4, m=2, n_levels=2)
    present: set[int] = set()
    for _ in range(3000):
        atom = int(rng.choice(ids))
        if atom in present:
            np.testing.assert_array_equal(target.pack_atom(atom, remove=True), states[atom])
            present.remove(atom)
        else:
            target.unpack_atom(states[atom])
            present.add(atom)
    assert target.n_atoms == len(present)
    packed = target.pack_all()
    assert sorted(present) == [int(x) for x in packed[:, 1]]
    for atom in present:
        np.testing.assert_array_equal(target.pack_atom(atom), states[atom])
