"""The per-atom state of fix nmr/ml (where the correlator state will live) moves with its
atom between MPI ranks and through write_restart/read_restart; the sampling schedule
over several runs, reset_timestep, minimize and rerun is the documented one.

The test-only keyword ``debug_csr K rc`` (no model; cut-off rc) keeps K doubles per atom: atom ID and owning rank
at the atom's first sample, number of samples, summed neighbour counts, then ID + k in
slot k >= 4.  Under a rigid translation (fix move) every atom keeps its neighbour count,
so the expected state follows from a brute-force neighbour list of the last frame."""
from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from lammps_plugin_helpers import (
    DEBUG_COUNT,
    DEBUG_OWNER_RANK,
    DEBUG_STATE_FIRST,
    PREAMBLE,
    built_plugin,
    processor_grid_size,
    rattled_al_o_structure,
    read_last_dump,
    run_lammps,
    write_data_file,
)

STATE_WIDTH = 6
FIX = f"fix nmr all nmr/ml 10 model.npz elements Al O debug_csr {STATE_WIDTH} 5.0"
DUMP = (
    "dump d all custom 100 dump.state id type x y z "
    + " ".join(f"f_nmr[{k}]" for k in (DEBUG_COUNT, DEBUG_OWNER_RANK))
    + " "
    + " ".join(f"f_nmr[{DEBUG_STATE_FIRST + k}]" for k in range(STATE_WIDTH))
    + "\ndump_modify d format float %.17g\n"
)
MOTION = "timestep 0.001\nfix move all move linear 0.0 0.0 40.0\n"  # 8 A in 200 steps


@pytest.fixture
def system(tmp_path):
    atoms = rattled_al_o_structure()
    write_data_file(atoms, tmp_path / "data.lmp")
    (tmp_path / "model.npz").write_bytes(b"")
    return tmp_path, atoms


def check_state(rows: np.ndarray, atoms, n_samples: int) -> np.ndarray:
    """Assert the debug state of every atom; return (first rank, current rank) per atom."""
    ids = rows[:, 0]
    count, owner = rows[:, 5], rows[:, 6]
    state = rows[:, 7:]
    i = neighbor_list("i", atoms, 5.0)
    assert np.array_equal(count, np.bincount(i, minlength=len(atoms)))  # rigid motion
    assert np.array_equal(state[:, 0], ids)
    assert np.all(state[:, 2] == n_samples)
    assert np.array_equal(state[:, 3], n_samples * count)
    for k in range(4, STATE_WIDTH):
        assert np.array_equal(state[:, k], ids + k)
    return np.stack([state[:, 1], owner], axis=1)


@pytest.mark.parametrize("ranks", [1, 2])
def test_state_migrates_with_atoms(system, ranks):
    folder, atoms = system
    plugin = built_plugin()
    result = run_lammps(
        folder, PREAMBLE + f"plugin load {plugin}\n" + MOTION + FIX + "\n" + DUMP + "run 200\n",
        ranks=ranks,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert processor_grid_size(result.stdout) == ranks
    _, rows = read_last_dump(folder / "dump.state")
    ranks_seen = check_state(rows, atoms, n_samples=21)  # steps 0, 10, ..., 200
    if ranks == 2:
        migrated = np.count_nonzero(ranks_seen[:, 0] != ranks_seen[:, 1])
        assert migrated > 0.2 * len(atoms)


@pytest.mark.parametrize("ranks, ranks_after_restart", [(1, 1), (2, 2), (2, 1)])
def test_state_survives_restart(system, ranks, ranks_after_restart):
    folder, atoms = system
    plugin = built_plugin()
    unsplit = run_lammps(
        folder, PREAMBLE + f"plugin load {plugin}\n" + MOTION + FIX + "\n" + DUMP + "run 200\n",
        ranks=ranks,
    )
    assert unsplit.returncode == 0, unsplit.stdout + unsplit.stderr
    _, unsplit_rows = read_last_dump(folder / "dump.state")

    first = run_lammps(
        folder,
        PREAMBLE + f"plugin load {plugin}\n" + MOTION + FIX + "\nrun 100\nwrite_restart restart.bin\n",
        ranks=ranks,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    restarted = PREAMBLE.replace("read_data data.lmp", "read_restart restart.bin")
    second = run_lammps(
        folder, restarted + f"plugin load {plugin}\n" + MOTION + FIX + "\n" + DUMP + "run 100\n",
        ranks=ranks_after_restart,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    _, rows = read_last_dump(folder / "dump.state")
    check_state(rows, atoms, n_samples=21)  # step 100 sampled once, before the restart
    # same state as the unsplit run (positions and owners may differ by a periodic wrap)
    assert np.array_equal(rows[:, 7:], unsplit_rows[:, 7:])


def test_restart_with_changed_keywords_is_refused(system):
    folder, _ = system
    plugin = built_plugin()
    first = run_lammps(
        folder, PREAMBLE + f"plugin load {plugin}\n" + FIX + "\nrun 10\nwrite_restart restart.bin\n"
    )
    assert first.returncode == 0, first.stdout + first.stderr
    restarted = PREAMBLE.replace("read_data data.lmp", "read_restart restart.bin")
    changed = FIX.replace("nmr/ml 10", "nmr/ml 5")
    second = run_lammps(folder, restarted + f"plugin load {plugin}\n" + changed + "\nrun 10\n")
    assert second.returncode != 0
    assert (
        "ERROR: Fix nmr/ml nmr: restart file was written with N 10 but this input gives N 5"
        in second.stdout
    )


def test_sampling_over_runs_reset_timestep_and_minimize(system):
    """Samples at steps that are multiples of N, once per step: setup of a following run
    does not repeat the last step; minimize takes none."""
    folder, atoms = system
    plugin = built_plugin()
    script = (
        PREAMBLE.replace("pair_style zero 3.0\npair_coeff * *", "pair_style lj/cut 3.0\npair_coeff * * 0.01 2.0")
        + f"plugin load {plugin}\n" + FIX + "\n"
        + "run 20\n"  # 0, 10, 20
        + "run 20\n"  # 30, 40
        + "reset_timestep 0\nrun 10\n"  # 0, 10
        + "minimize 0 0 25 25\n"  # none
        + "reset_timestep 100\n" + DUMP.replace("100", "10") + "run 10\n"  # 100, 110
    )
    result = run_lammps(folder, script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Minimization stats" in result.stdout
    _, rows = read_last_dump(folder / "dump.state")
    assert np.all(rows[:, 7 + 2] == 9)


def test_rerun_samples_every_snapshot(system):
    """rerun: init() and end_of_step() run for every stored frame (steps 0..50 by 10)."""
    folder, atoms = system
    plugin = built_plugin()
    traj = "dump t all custom 10 traj.dump id type x y z\ndump_modify t format float %.17g\n"
    recorded = run_lammps(folder, PREAMBLE + MOTION + traj + "run 50\n")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    replay = (
        PREAMBLE + f"plugin load {plugin}\n" + FIX + "\n" + DUMP.replace("100", "10")
        + "rerun traj.dump dump x y z\n"
    )
    result = run_lammps(folder, replay)
    assert result.returncode == 0, result.stdout + result.stderr
    _, rows = read_last_dump(folder / "dump.state")
    check_state(rows, atoms, n_samples=6)
