"""Bad input to fix nmr/ml stops LAMMPS with an error naming the fix and the value
(error->all: exit code 1 on every rank, no crash), on 1 and 2 MPI ranks."""
from __future__ import annotations

import pytest

import shutil

from lammps_plugin_helpers import built_plugin, run_lammps, trained_al_model

BOX = """units {units}
{atom_modify}lattice fcc 4.05
region box block 0 4 0 4 0 4
create_box 2 box
create_atoms 1 box
set type 1 type/fraction 2 0.3 12345
mass * 1.0
pair_style zero 3.0
pair_coeff * *
neighbor 1.0 bin
comm_modify cutoff {comm_cutoff}
"""
GOOD = "10 model.npz elements Al O"

CASES = {
    "unknown keyword": (
        {}, GOOD + " colour blue", "Fix nmr/ml nmr: unknown keyword colour"),
    "type without element": (
        {}, "10 model.npz elements Al",
        "Fix nmr/ml nmr: atom type 2 has no element (elements lists 1 of 2 types)"),
    "keyword where an element belongs": (
        {}, "10 model.npz elements Al skip_unknown yes",
        "Fix nmr/ml nmr: atom type 2 has no element: 'skip_unknown' is not a chemical element"),
    "not an element symbol": (
        {}, "10 model.npz elements Al Xx",
        "Fix nmr/ml nmr: atom type 2 has no element: 'Xx' is not a chemical element"),
    "N zero": ({}, "0 model.npz elements Al O", "Fix nmr/ml nmr: N must be > 0, got 0"),
    "N negative": ({}, "-5 model.npz elements Al O", "Fix nmr/ml nmr: N must be > 0, got -5"),
    "atom IDs off": (
        {"atom_modify": "atom_modify id no\n"}, GOOD,
        "Fix nmr/ml nmr requires atom IDs (atom_modify id no is set)"),
    "units lj": (
        {"units": "lj"}, GOOD,
        "Fix nmr/ml nmr requires units metal or real (distances in Angstrom), got units lj"),
    "missing model file": (
        {}, "10 missing.npz elements Al O", "Fix nmr/ml nmr: cannot read model file missing.npz"),
    "communication cut-off too short": (
        {"comm_cutoff": "4.0"}, GOOD,
        "Fix nmr/ml nmr: communication cut-off 4 Angstrom is shorter than the model cut-off 4 "
        "+ neighbor skin 1 Angstrom; use comm_modify cutoff 5 (or larger)"),
    "every_sigma not a multiple of N": (
        {}, GOOD + " every_sigma 15",
        "Fix nmr/ml nmr: every_sigma must be a positive multiple of N = 10, got 15"),
    "acf window zero": ({}, GOOD + " acf 0", "Fix nmr/ml nmr: acf window must be > 0 samples, got 0"),
    "acf_file without acf": (
        {}, GOOD + " acf_file out.acf",
        "Fix nmr/ml nmr: acf_file out.acf given without acf window"),
    "negative OOD threshold": (
        {}, GOOD + " ood_threshold -1", "Fix nmr/ml nmr: ood_threshold must be >= 0, got -1"),
    "isotope of an unlisted element": (
        {}, GOOD + " isotope Na 23Na",
        "Fix nmr/ml nmr: isotope given for Na, which is not in the elements list"),
    "isotope without pairs": (
        {}, GOOD + " isotope threads 2",
        "Fix nmr/ml nmr: keyword isotope needs pairs 'Element Isotope' (e.g. Al 27Al)"),
    "isotope written the wrong way": (
        {}, GOOD + " isotope Al Al27",
        "Fix nmr/ml nmr: isotope of Al must be written as mass number and symbol (e.g. 27Al), "
        "got Al27"),
    "isotope of another element": (
        {}, GOOD + " isotope Al 17O",
        "Fix nmr/ml nmr: isotope of Al must be written as mass number and symbol (e.g. 27Al), "
        "got 17O"),
    "zero threads": ({}, GOOD + " threads 0", "Fix nmr/ml nmr: threads must be > 0, got 0"),
    "unknown EFG units": (
        {}, GOOD + " efg_units MHz", "Fix nmr/ml nmr: efg_units must be au or V/A2, got MHz"),
    "keyword without value": ({}, GOOD + " threads", "Fix nmr/ml nmr: keyword threads needs a value"),
    "debug_csr without cut-off": (
        {}, GOOD + " debug_csr 4", "Fix nmr/ml nmr: debug_csr needs a state width and a cut-off"),
    "corrupt model file": (
        {}, "10 corrupt.npz elements Al O",
        "Fix nmr/ml nmr: cannot load model file corrupt.npz: ModelFileError: corrupt.npz: not an "
        "ase_mlnmr model file"),
    "element in the group that the model lacks": (
        {}, GOOD,
        "Fix nmr/ml nmr: atom type 2 (O) is in group all but model model.npz has no component "
        "for O; use skip_unknown yes"),
    "acf_every not a multiple of N": (
        {}, GOOD + " acf 100 acf_every 15",
        "Fix nmr/ml nmr: acf_every must be a positive multiple of N = 10, got 15"),
}


def lammps_input(plugin, box: dict, fix_arguments: str) -> str:
    settings = {"units": "metal", "atom_modify": "", "comm_cutoff": "6.0", **box}
    return BOX.format(**settings) + f"plugin load {plugin}\nfix nmr all nmr/ml {fix_arguments}\nrun 0\n"


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_named_lammps_error(tmp_path, case, ranks):
    box, fix_arguments, message = CASES[case]
    shutil.copy(trained_al_model(), tmp_path / "model.npz")    # Al only: O has no component
    (tmp_path / "corrupt.npz").write_bytes(b"this is not a model file")
    result = run_lammps(tmp_path, lammps_input(built_plugin(), box, fix_arguments), ranks=ranks)
    assert result.returncode == 1, result.stdout + result.stderr  # not a signal
    assert f"ERROR: {message}" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("units", ["metal", "real"])
def test_good_input_runs(tmp_path, units):
    """Control: the same box and keywords without the error run (debug mode computes)."""
    (tmp_path / "model.npz").write_bytes(b"")
    arguments = GOOD + " skip_unknown yes every_sigma 50 acf 200 acf_file out.acf isotope Al 27Al O 17O"
    arguments += " ood_threshold 0.5 threads 2 efg_units V/A2 debug_csr 4 5.0"
    script = lammps_input(built_plugin(), {"units": units}, arguments)
    result = run_lammps(tmp_path, script + "unfix nmr\nrun 10\n")  # and the fix goes away cleanly
    assert result.returncode == 0, result.stdout + result.stderr
    assert "correlation window 200 samples, file out.acf, isotopes 27Al 17O" in result.stdout


def test_global_vector_layout(tmp_path):
    """thermo sees 1 + 3 x (number of distinct elements) global values: OOD count, then per
    element mean delta_iso, mean CQ, EFG scaling factor (NaN until the core is wired)."""
    (tmp_path / "model.npz").write_bytes(b"")
    fix = "fix nmr all nmr/ml 10 model.npz elements Al O debug_csr 4 5.0\n"
    box = BOX.format(units="metal", atom_modify="", comm_cutoff="6.0")
    plugin = f"plugin load {built_plugin()}\n"
    inside = run_lammps(tmp_path, box + plugin + fix + "thermo_style custom step f_nmr[1] f_nmr[7]\nrun 0\n")
    assert inside.returncode == 0, inside.stdout + inside.stderr
    header = next(line for line in inside.stdout.splitlines() if line.split()[:1] == ["Step"])
    assert header.split() == ["Step", "f_nmr[1]", "f_nmr[7]"]
    outside = run_lammps(tmp_path, box + plugin + fix + "thermo_style custom step f_nmr[8]\nrun 0\n")
    assert outside.returncode == 1
    assert "ERROR: Thermo custom fix nmr vector is accessed out-of-range" in outside.stdout


def test_evaluator_status_names_the_atom_and_its_neighbour(tmp_path):
    """Two Al atoms 1e-6 A apart: the evaluator's status (coincident atoms) stops LAMMPS
    with an error naming the atom ID, its element and the neighbour entry (no crash)."""
    shutil.copy(trained_al_model(), tmp_path / "model.npz")
    (tmp_path / "data.lmp").write_text(
        "two atoms\n\n2 atoms\n1 atom types\n\n0 10 xlo xhi\n0 10 ylo yhi\n0 10 zlo zhi\n\n"
        "Atoms # atomic\n\n1 1 5.0 5.0 5.0\n2 1 5.000001 5.0 5.0\n")
    script = (f"plugin load {built_plugin()}\nunits metal\natom_style atomic\nread_data data.lmp\nmass 1 27.0\n"
              "pair_style zero 3.0\npair_coeff * *\ncomm_modify cutoff 6.0\n"
              "fix nmr all nmr/ml 1 model.npz elements Al\nrun 0\n")
    result = run_lammps(tmp_path, script)
    assert result.returncode != 0 and result.returncode > 0    # an error exit, not a signal
    output = result.stdout + result.stderr
    assert "Fix nmr/ml nmr: model evaluation failed at step 0 for atom ID 1 (type 1, Al) on rank 0" in output, output
    assert "its neighbour 1 of 1 (Z = 13, r_j - r_i = (1e-06, 0, 0) Angstrom)" in output, output
    assert "coincident" in output, output
