"""fix nmr/ml builds the CSR neighbour data the evaluator consumes: per centre of the
group, displacements r_j - r_i (ghosts across periodic and rank boundaries included)
and atomic numbers within the model cut-off.  Exported through the test-only keyword
debug_csr (which loads no model and takes the cut-off) and compared with a brute-force ASE neighbour list on the dumped positions."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from lammps_plugin_helpers import (
    DEBUG_COUNT,
    DEBUG_OWNER_RANK,
    PREAMBLE,
    built_plugin,
    processor_grid_size,
    rattled_al_o_structure,
    read_last_dump,
    run_lammps,
    write_data_file,
)

CUTOFF = 4.6  # Angstrom, given to debug_csr


def reference_sums(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per atom: neighbour count, sum of displacement vectors, sum of neighbour Z."""
    i, j, displacements = neighbor_list("ijD", atoms, CUTOFF)
    n = len(atoms)
    counts = np.bincount(i, minlength=n)
    sums = np.stack([np.bincount(i, displacements[:, d], minlength=n) for d in range(3)], 1)
    numbers = np.bincount(i, atoms.numbers[j].astype(float), minlength=n)
    return counts, sums, numbers


@pytest.mark.parametrize("ranks", [1, 2])
def test_csr_neighbour_data_equals_brute_force(tmp_path, ranks):
    plugin = built_plugin()
    atoms = rattled_al_o_structure()
    write_data_file(atoms, tmp_path / "data.lmp")
    (tmp_path / "model.npz").write_bytes(b"")
    columns = " ".join(f"f_nmr[{k}]" for k in range(DEBUG_COUNT, DEBUG_OWNER_RANK + 1))
    # 100 atoms move 0.3 A against the rest in 20 steps, less than skin/2: the perpetual
    # list is not rebuilt, so only a list built at cut-off + skin has every pair
    result = run_lammps(tmp_path, PREAMBLE + f"""plugin load {plugin}
group movers id 1:100
group centres type 1
timestep 0.001
fix move movers move linear 12.0 -8.0 -14.0
fix nmr centres nmr/ml 10 model.npz elements Al O debug_csr 4 {CUTOFF}
dump d all custom 20 dump.csr id type x y z {columns}
dump_modify d format float %.17g
run 20
""", ranks=ranks)
    assert result.returncode == 0, result.stdout + result.stderr
    assert processor_grid_size(result.stdout) == ranks
    _, rows = read_last_dump(tmp_path / "dump.csr")
    ids, types, positions, debug = rows[:, 0], rows[:, 1], rows[:, 2:5], rows[:, 5:]
    moved = atoms.copy()
    moved.positions = positions
    moved.numbers = np.where(types == 1, 13, 8)
    assert np.array_equal(ids, np.arange(1, len(atoms) + 1))
    assert np.abs(positions[:100] - atoms.positions[:100]).max() > 0.1

    counts, sums, numbers = reference_sums(moved)
    centres = types == 1
    assert np.array_equal(debug[centres, 0], counts[centres])
    np.testing.assert_allclose(debug[centres, 1:4], sums[centres], rtol=0, atol=1e-11)
    assert np.array_equal(debug[centres, 4], numbers[centres])
    assert np.isnan(debug[~centres, :5]).all()  # atoms outside the group are no centres
    # the data would differ on the starting positions: the test sees the motion
    assert not np.array_equal(reference_sums(atoms)[0][centres], counts[centres])
    if ranks == 2:
        owner = debug[centres, 5]
        assert set(np.unique(owner)) == {0.0, 1.0}
