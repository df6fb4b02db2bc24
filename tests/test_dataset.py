"""Tests of ase_mlnmr.training.dataset on synthetic files and on the shared real data."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from ase_mlnmr.training.dataset import TensorDataset, read_tensor_dataset

AU_IN_V_PER_A2 = 97.1736  # NMR_CONVENTIONS.md: 1 a.u. of EFG = 97.1736 V/A^2


def _shared_data() -> Path:
    env = os.environ.get("ASE_MLNMR_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


DATA = _shared_data()
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared real data not available")


def _synthetic_extxyz(path: Path, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Two frames with per-atom 'ms' (non-symmetric) and 'efg' (a.u.), masks and a NaN row.

    extxyz stores 8 decimals, hence the absolute tolerances below."""
    ms_all, efg_all, masks = [], [], []
    frames = []
    for n in (3, 4):
        atoms = Atoms("Si" + "O" * (n - 1), positions=rng.normal(size=(n, 3)), cell=np.eye(3) * 6, pbc=True)
        ms = rng.normal(size=(n, 3, 3)) * 10 + 400 * np.eye(3)
        efg = rng.normal(size=(n, 3, 3))
        efg = efg + np.swapaxes(efg, 1, 2)
        mask = np.ones(n, dtype=bool)
        mask[1] = False
        ms_file = ms.reshape(n, 9).copy()
        ms_file[1] = 0.0
        efg_file = efg.reshape(n, 9).copy()
        efg_file[-1] = np.nan  # no EFG tensor for the last atom
        atoms.new_array("ms", ms_file)
        atoms.new_array("ms_mask", mask)
        atoms.new_array("efg", efg_file)
        frames.append(atoms)
        ms_all.append(ms)
        efg_all.append(efg)
        masks.append(mask)
    write(path, frames, format="extxyz")
    return ms_all, efg_all, masks


def test_extxyz_requires_units(tmp_path: Path) -> None:
    _synthetic_extxyz(tmp_path / "a.extxyz", np.random.default_rng(0))
    with pytest.raises(ValueError, match="efg_units"):
        read_tensor_dataset(tmp_path / "a.extxyz", ms_units="ppm")
    with pytest.raises(ValueError, match="ms_units"):
        read_tensor_dataset(tmp_path / "a.extxyz", efg_units="au")
    with pytest.raises(ValueError, match="units"):
        read_tensor_dataset(tmp_path / "a.extxyz", ms_units="ppb", efg_units="au")
    with pytest.raises(ValueError, match="units"):
        read_tensor_dataset(tmp_path / "a.extxyz", ms_units="ppm", efg_units="MHz")
    # asking only for ms needs only the ms units
    ds = read_tensor_dataset(tmp_path / "a.extxyz", ms_units="ppm", properties=("ms",))
    assert ds.properties == ("ms",)


def test_extxyz_masks_units_and_symmetrisation(tmp_path: Path) -> None:
    ms, efg, masks = _synthetic_extxyz(tmp_path / "a.extxyz", np.random.default_rng(1))
    raw = read_tensor_dataset(tmp_path / "a.extxyz", ms_units="ppm", efg_units="au", symmetrise_shielding=False)
    sym = read_tensor_dataset(tmp_path / "a.extxyz", ms_units="ppm", efg_units="au")
    vpa = read_tensor_dataset(tmp_path / "a.extxyz", ms_units="ppm", efg_units="V/A^2")
    assert isinstance(raw, TensorDataset) and len(raw) == 2
    for i in range(2):
        np.testing.assert_array_equal(raw.masks["ms"][i], masks[i])
        m = masks[i]
        np.testing.assert_allclose(raw.tensors["ms"][i][m], ms[i][m], rtol=1e-7)
        np.testing.assert_allclose(sym.tensors["ms"][i][m], 0.5 * (ms[i] + np.swapaxes(ms[i], 1, 2))[m], rtol=1e-7)
        efg_mask = np.ones(len(m), dtype=bool)
        efg_mask[-1] = False
        np.testing.assert_array_equal(raw.masks["efg"][i], efg_mask)
        np.testing.assert_allclose(raw.tensors["efg"][i][efg_mask], efg[i][efg_mask], atol=1e-7)
        np.testing.assert_allclose(
            vpa.tensors["efg"][i][efg_mask], efg[i][efg_mask] / AU_IN_V_PER_A2, rtol=1e-5, atol=1e-8
        )
        for ds in (raw, sym, vpa):
            for prop in ("ms", "efg"):
                assert np.all(np.isfinite(ds.tensors[prop][i]))
                assert np.all(ds.tensors[prop][i][~ds.masks[prop][i]] == 0.0)
    assert raw.units == {"ms": "ppm", "efg": "au"}
    assert raw.symmetrised_shielding is False and sym.symmetrised_shielding is True
    # tensors are not duplicated on the Atoms objects
    assert "ms" not in raw.structures[0].arrays and "efg_mask" not in raw.structures[0].arrays


def test_selection_and_groups(tmp_path: Path) -> None:
    _synthetic_extxyz(tmp_path / "a.extxyz", np.random.default_rng(2))
    _synthetic_extxyz(tmp_path / "b.extxyz", np.random.default_rng(3))
    ds = read_tensor_dataset([tmp_path / "*.extxyz"], ms_units="ppm", efg_units="au")
    assert len(ds) == 4
    assert [Path(s).name for s in ds.sources] == ["a.extxyz", "a.extxyz", "b.extxyz", "b.extxyz"]
    assert ds.frames == [0, 1, 0, 1]
    sel = ds.select("ms")
    # per frame: atoms 0, 2(, 3) carry ms (atom 1 masked)
    assert sel.structure_index.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert sel.atom_index.tolist() == [0, 2, 0, 2, 3, 0, 2, 0, 2, 3]
    for s, a, t in zip(sel.structure_index, sel.atom_index, sel.tensors):
        np.testing.assert_array_equal(t, ds.tensors["ms"][s][a])
    si = ds.select("ms", "Si")
    assert np.all(si.numbers == 14) and len(si) == 4 and si.atom_index.tolist() == [0, 0, 0, 0]
    np.testing.assert_array_equal(ds.group_labels("ms", "O"), ds.select("ms", 8).structure_index)
    fam = ds.group_labels("ms", structure_groups=[7, 7, 9, 9])
    assert fam.tolist() == [7] * 5 + [9] * 5
    with pytest.raises(ValueError):
        ds.group_labels("ms", structure_groups=[1, 2])
    sub = ds.subset([2])
    assert len(sub) == 1 and sub.n_tensors("ms") == 2
    hashes = ds.file_hashes()
    assert len(hashes) == 2 and all(len(h) == 64 for h in hashes.values())


def test_missing_files() -> None:
    with pytest.raises(FileNotFoundError):
        read_tensor_dataset("/nonexistent/dir/*.magres")
    with pytest.raises(FileNotFoundError):
        read_tensor_dataset("/nonexistent/file.extxyz", ms_units="ppm")


# ------------------------------------------------------------------ real data
@needs_data
def test_mp_al27_matches_published_json() -> None:
    path = DATA / "mp_al27" / "mp_al27.extxyz"
    with pytest.raises(ValueError, match="efg_units"):
        read_tensor_dataset(path, ms_units="ppm")
    ds = read_tensor_dataset(path, ms_units="ppm", efg_units="V/A^2", symmetrise_shielding=False)
    ref = json.loads((DATA / "mp_al27" / "example_data.json").read_text())
    assert len(ds) == len(ref) == 20
    assert ds.n_tensors("ms") == ds.n_tensors("efg") == 587
    for i in (0, 7, 19):
        cs = np.array(ref[i]["cs"], dtype=float)  # nested 3x3 lists: independent of row-major packing
        efg = np.array(ref[i]["efg"], dtype=float)
        np.testing.assert_allclose(ds.tensors["ms"][i], cs, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(ds.tensors["efg"][i] * AU_IN_V_PER_A2, efg, rtol=1e-5, atol=1e-9)
    al = ds.select("efg", "Al")
    assert len(al) > 0 and np.all(al.numbers == 13)


@needs_data
def test_venetos_mask() -> None:
    ds = read_tensor_dataset(DATA / "venetos_si_ms" / "venetos_si_ms_dev.extxyz", ms_units="ppm")
    assert len(ds) == 295
    assert ds.n_tensors("ms") == 957 and ds.n_tensors("efg") == 0
    sel = ds.select("ms")
    assert np.all(sel.numbers == 14)
    t = sel.tensors
    np.testing.assert_allclose(t, np.swapaxes(t, 1, 2))  # symmetrised by default
    assert np.all(np.trace(t, axis1=1, axis2=2) / 3 > 100)  # 29Si sigma_iso is a few hundred ppm
    groups_csv = DATA / "venetos_si_ms" / "venetos_dev_groups.csv"
    if groups_csv.is_file():
        rows = np.genfromtxt(groups_csv, delimiter=",", names=True, dtype=None, encoding="utf-8")
        structure_groups = np.asarray(rows["group"])[np.argsort(rows["frame_index"])]
        labels = ds.group_labels("ms", structure_groups=structure_groups)
        assert np.unique(labels).size <= 261
        np.testing.assert_array_equal(labels, structure_groups[sel.structure_index])


@needs_data
def test_gehlenite_magres_units_win() -> None:
    files = sorted((DATA / "gehlenite_efg" / "orig").glob("*.magres"))
    if not files:
        pytest.skip("gehlenite files absent")
    ds = read_tensor_dataset(str(DATA / "gehlenite_efg" / "orig" / "*.magres"))
    assert len(ds) == len(files) and all(len(a) == 288 for a in ds.structures)
    assert ds.n_tensors("efg") == 288 * len(files) and ds.n_tensors("ms") == 0
    assert all(u == {"efg": "au"} for u in ds.input_units.values())
    # the units stated by the file win over a caller's statement for extxyz files
    again = read_tensor_dataset(files[0], efg_units="V/A^2")
    np.testing.assert_array_equal(again.tensors["efg"][0], ds.tensors["efg"][0])
    # the first EFG line of the file, parsed here by hand (atomic units)
    for line in files[0].read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["efg"]:
            label, index = parts[1], int(parts[2])
            values = np.array(parts[3:12], dtype=float).reshape(3, 3)
            break
    atoms = ds.structures[0]
    k = int(np.flatnonzero((atoms.arrays["labels"] == label) & (atoms.arrays["indices"] == index))[0])
    np.testing.assert_allclose(ds.tensors["efg"][0][k], values)
    sel = ds.select("efg", "Al")
    assert len(sel) == 48 * len(files)
    assert np.all(np.abs(np.trace(sel.tensors, axis1=1, axis2=2)) < 1e-3 * np.abs(sel.tensors).max())


@needs_data
def test_magres_fixtures_shielding() -> None:
    qe = DATA / "magres_fixtures" / "NaP_QE6.magres"
    ds = read_tensor_dataset(DATA / "magres_fixtures" / "*.magres")
    assert len(ds) == 2 and ds.properties == ("ms",)
    k = [Path(s).name for s in ds.sources].index(qe.name)
    text = qe.read_text()
    rows = [l.split() for l in text.splitlines() if re.match(r"\s*ms\s", l)]
    expected = np.array([r[3:12] for r in rows], dtype=float).reshape(-1, 3, 3)
    expected = 0.5 * (expected + np.swapaxes(expected, 1, 2))
    np.testing.assert_allclose(ds.tensors["ms"][k], expected)
    assert ds.masks["ms"][k].all()
