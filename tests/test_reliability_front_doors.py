"""Training files and the command line on hostile input (issue 8, items 2, 4, 11): silent
data loss in readers, the sign of the embedded VASP shieldings, unknown elements in
``evaluate`` and output paths that cannot be written, found before the work."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write
from ase.neighborlist import neighbor_list

from ase_mlnmr.cli import main
from ase_mlnmr.examples import load_mp_al27, mp_al27_path
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.training.dataset import read_tensor_dataset

from synthetic_data import synthetic_dataset

UNWRITABLE = Path("/proc/ase_mlnmr_cannot_write_here")  # read-only even for root


def _al_coordination(atoms) -> dict[int, int]:
    """Number of O within 2.3 Å of each Al (independent of the package)."""
    i, j = neighbor_list("ij", atoms, 2.3)
    symbols = np.array(atoms.get_chemical_symbols())
    return {int(a): int(np.sum((i == a) & (symbols[j] == "O"))) for a in np.flatnonzero(symbols == "Al")}


# ------------------------------------------------------------------ item 2: readers
def test_magres_block_without_units_line_names_file_and_block(shared_data, tmp_path):
    text = (shared_data / "magres_fixtures" / "LiP_CASTEP18.magres").read_text()
    broken = tmp_path / "no_units.magres"
    broken.write_text("\n".join(line for line in text.splitlines() if line.split()[:2] != ["units", "ms"]))
    assert "ms" not in read(broken).arrays  # what ASE does with it: the block is gone
    with pytest.raises(ValueError, match=r"no_units\.magres.*'ms' lines but no 'units ms' line"):
        read_tensor_dataset(broken)
    intact = read_tensor_dataset(shared_data / "magres_fixtures" / "LiP_CASTEP18.magres")
    assert intact.n_tensors("ms") == 20


def test_extxyz_whose_tensors_are_all_nan_is_reported(tmp_path):
    atoms = Atoms("SiO2", positions=[[0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0]], cell=[8, 8, 8], pbc=True)
    atoms.arrays["ms"] = np.full((3, 9), np.nan)
    path = tmp_path / "all_nan.extxyz"
    write(path, [atoms, atoms])
    with pytest.raises(ValueError, match=r"all_nan\.extxyz.*'ms'.*NaN or inf"):
        read_tensor_dataset(path, ms_units="ppm")
    atoms.arrays["ms"][1] = np.eye(3).ravel() * 300.0  # one usable tensor: read, NaN atoms masked
    write(path, atoms)
    data = read_tensor_dataset(path, ms_units="ppm")
    assert data.n_tensors("ms") == 1


# ------------------------------------------------------------------ item 11: the sign of mp_al27
def test_mp_al27_is_read_as_shielding_lower_for_tetrahedral_al():
    raw = [frame for frame in read(mp_al27_path(), ":") if "O" in frame.get_chemical_symbols()]
    data = load_mp_al27()
    assert data.ms_convention == "shift"
    by_cn: dict[int, list[float]] = {4: [], 6: []}
    for k, atoms in enumerate(data.structures):
        stored = raw[k].arrays["ms"].reshape(-1, 3, 3)
        np.testing.assert_allclose(np.trace(data.tensors["ms"][k], axis1=1, axis2=2),
                                   -np.trace(stored, axis1=1, axis2=2))  # −(VASP's numbers)
        sigma_iso = np.trace(data.tensors["ms"][k], axis1=1, axis2=2) / 3
        for atom, cn in _al_coordination(atoms).items():
            if cn in by_cn:
                by_cn[cn].append(sigma_iso[atom])
    # shielding falls as coordination falls: 27Al in AlO4 is less shielded than in AlO6
    assert max(by_cn[4]) < min(by_cn[6]) + 15.0 and np.mean(by_cn[4]) < np.mean(by_cn[6]) - 25.0


def test_ms_convention_is_explicit_and_validated(tmp_path, shared_data):
    with pytest.raises(ValueError, match="ms_convention.*'shielding'.*'shift'"):
        read_tensor_dataset(mp_al27_path(), ms_units="ppm", efg_units="V/A^2", ms_convention="negative")
    with pytest.raises(ValueError, match="magres files hold shieldings"):
        read_tensor_dataset(shared_data / "magres_fixtures" / "LiP_CASTEP18.magres", ms_convention="shift")
    plain = read_tensor_dataset(mp_al27_path(), ms_units="ppm", efg_units="V/A^2")
    assert plain.ms_convention == "shielding"
    assert np.trace(plain.tensors["ms"][0][0]) > 0  # nothing is guessed by default


def test_demo_puts_tetrahedral_al_above_octahedral_on_the_shift_axis(tmp_path):
    assert main(["demo", "--ase-only", "-o", str(tmp_path / "demo"), "-q"]) == 0
    rows = [r for r in csv.DictReader(open(tmp_path / "demo" / "predictions.csv")) if r["element"] == "Al"]
    oxides = load_mp_al27()
    shifts: dict[int, list[float]] = {4: [], 6: []}
    for row in rows:
        assert row["delta_iso_ppm"] != "", "the demo must give calibrated 27Al shifts"
        index = int(row["structure"].rsplit("_", 1)[1])
        cn = _al_coordination(oxides.structures[index])[int(row["index"])]
        if cn in shifts:
            shifts[cn].append(float(row["delta_iso_ppm"]))
    assert shifts[4] and shifts[6]
    assert min(shifts[4]) > max(shifts[6])


# ------------------------------------------------------------------ item 4: the command line
@pytest.fixture(scope="module")
def si_o_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli_model") / "sio.npz"
    data = synthetic_dataset(n_structures=4, n_atoms=20, seed=1)
    config = {"descriptor": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5},
              "ms_iso": {"n_inducing": 30}, "efg": {"alpha": 1e-6}, "ms_aniso": {"alpha": 1e-6},
              "ood": {"n_inducing": 30}}
    NMRModel.train(data, config, progress=False).save(path)
    return path


def test_evaluate_on_elements_the_model_lacks_is_a_named_error_or_skipped(si_o_model, tmp_path, capsys):
    # one Si/O structure the model can describe, then an Al-bearing oxide it cannot
    known = synthetic_dataset(n_structures=1, n_atoms=20, seed=9)
    first = known.structures[0].copy()
    first.arrays["ms"] = known.tensors["ms"][0].reshape(-1, 9)
    oxide = next(f for f in read(mp_al27_path(), ":") if "O" in f.get_chemical_symbols())
    del oxide.arrays["efg"]
    mixed = tmp_path / "mixed.extxyz"
    write(mixed, [first, oxide])
    args = ["evaluate", str(si_o_model), str(mixed), "--ms-units", "ppm", "--plots", str(tmp_path / "plots"), "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "mixed.extxyz (frame 1)" in err and "Al" in err and "--skip-unknown" in err and "Traceback" not in err
    with pytest.warns(UserWarning, match="skipped 1 structures"):
        assert main(args + ["--skip-unknown"]) == 0
    assert "| ms | Si |" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "evaluate", "evaluate-json", "predict", "demo"])
def test_unwritable_output_is_refused_before_the_work(si_o_model, tmp_path, capsys, monkeypatch, command):
    import ase_mlnmr.training.fitting as fitting

    def no_training(*args, **kwargs):  # the check must come first: no training may start
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(fitting, "train_model", no_training)
    monkeypatch.setattr(NMRModel, "load", classmethod(lambda cls, path: no_training()))
    data = ["--ms-units", "ppm", "--efg-units", "V/A^2"]
    argv = {
        "train": ["train", str(mp_al27_path()), *data, "-o", str(UNWRITABLE / "model.npz")],
        "evaluate": ["evaluate", str(si_o_model), str(mp_al27_path()), *data, "--plots", str(UNWRITABLE)],
        "evaluate-json": ["evaluate", str(si_o_model), str(mp_al27_path()), *data,
                          "--plots", str(tmp_path), "--json", str(UNWRITABLE / "m.json")],
        "predict": ["predict", str(si_o_model), str(mp_al27_path()), "-o", str(UNWRITABLE)],
        "demo": ["demo", "-o", str(UNWRITABLE)],
    }[command]
    assert main(argv + ["-q"]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err


def test_output_file_name_taken_by_a_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "model.npz"
    folder.mkdir()
    assert main(["train", str(mp_al27_path()), "--ms-units", "ppm", "--efg-units", "au", "-o", str(folder),
                 "-q"]) == 2
    assert "it is a folder" in capsys.readouterr().err
    config = tmp_path / "c.json"
    config.write_text(json.dumps({}))


def test_cli_reads_vasp_shieldings_only_when_declared():
    from ase_mlnmr.cli import _read_dataset, build_parser

    common = ["evaluate", "model.npz", str(mp_al27_path()), "--ms-units", "ppm", "--efg-units", "V/A^2"]
    declared = _read_dataset(build_parser().parse_args(common + ["--ms-convention", "shift"]))
    default = _read_dataset(build_parser().parse_args(common))
    assert declared.ms_convention == "shift" and default.ms_convention == "shielding"
    np.testing.assert_allclose(declared.tensors["ms"][0], -default.tensors["ms"][0])
    with pytest.raises(SystemExit):
        build_parser().parse_args(common + ["--ms-convention", "guess"])
