"""Committee columns of the trajectory tool: the time averages of the σiso and |CQ| spreads
and the fraction of frames with the Vzz-axis flag equal the means of ``NMRModel.predict``
over the frames (model path and fix-column path), in time_averages.npz and
time_averaged.csv; NaN / empty for a model without a committee."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from ase.io import read

from ase_mlnmr.core.spherical_tensors import symmetric_traceless_to_l2
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.trajectory.analysis import AnalysisOptions
from ase_mlnmr.trajectory.run import run_trajectory

from synthetic_data import synthetic_dataset
from trajectory_helpers import MODEL_CONFIG, jiggled_frames, small_model, write_dump, write_extxyz

N_FRAMES = 12
OPTIONS = AnalysisOptions(p=4, m=2, n_levels=3, n_blocks=2, exact=False)
#: frame value → (time average, CSV column)
EXPECTED = {"ms_iso_std": ("ms_iso_std_mean", "sigma_iso_std_mean_ppm"), "cq_std": ("cq_std_mean", "cq_std_mean_MHz"),
            "vzz_axis_flag": ("vzz_axis_flag_fraction", "vzz_axis_flag_fraction")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("committee_trajectory")
    config = {**MODEL_CONFIG, "committee": {"size": 8, "fraction": 0.5, "seed": 1}}
    model = NMRModel.train(synthetic_dataset(n_structures=10, n_atoms=24, seed=10), config, progress=False)
    trajectory = write_extxyz(folder / "traj.extxyz", jiggled_frames(N_FRAMES))
    frames = read(trajectory, ":")
    predictions = [model.predict(atoms) for atoms in frames]
    return dict(folder=folder, model=model, trajectory=trajectory, frames=frames, predictions=predictions)


def _csv_column(path, column):
    with open(path) as handle:
        return np.array([float(row[column]) if row[column] else np.nan for row in csv.DictReader(handle)])


def _check(results, predictions):
    for name, (average, column) in EXPECTED.items():
        expected = np.mean([getattr(p, name) for p in predictions], axis=0)
        assert np.isfinite(expected).any(), name
        np.testing.assert_allclose(results.averages[average], expected, rtol=1e-10, equal_nan=True, err_msg=name)
        np.testing.assert_allclose(np.load(results.files["npz"])[average], expected, rtol=1e-10, equal_nan=True)
        np.testing.assert_allclose(_csv_column(results.files["csv"], column), expected, rtol=1e-9, equal_nan=True)


def test_time_averaged_spreads_equal_the_mean_of_the_predictions(setup, tmp_path):
    results = run_trajectory(setup["trajectory"], setup["model"], tmp_path / "out", frame_time_fs=5.0,
                             options=OPTIONS, plots=False, progress=False)
    _check(results, setup["predictions"])
    symbols = np.array(setup["frames"][0].get_chemical_symbols())
    assert np.isfinite(results.averages["ms_iso_std_mean"][symbols == "Si"]).all()
    assert np.isfinite(results.averages["cq_std_mean"][symbols == "O"]).all()
    assert np.isnan(results.averages["cq_std_mean"][symbols == "Si"]).all()   # 29Si: no quadrupole moment


def test_fix_columns_carry_the_spreads(setup, tmp_path):
    frames, predictions = setup["frames"], setup["predictions"]
    components = np.array([symmetric_traceless_to_l2(p.efg) for p in predictions])
    columns = {f"f_nmr[{6 + k}]": components[:, :, k] for k in range(5)}
    columns["f_nmr[1]"] = np.array([p.ms_iso for p in predictions])
    for k, name in zip((19, 20, 21), EXPECTED):
        columns[f"f_nmr[{k}]"] = np.array([getattr(p, name) for p in predictions])
    dump = write_dump(tmp_path / "fix.dump", frames, steps=10 * np.arange(N_FRAMES), type_of={"Si": 1, "O": 2},
                      columns=columns)
    results = run_trajectory(dump, None, tmp_path / "out", type_map={1: "Si", 2: "O"}, timestep_fs=0.5,
                             nmr_columns="f_nmr", options=OPTIONS, plots=False, progress=False)
    _check(results, predictions)


def test_no_committee_gives_nan_and_empty_csv_cells(setup, tmp_path):
    results = run_trajectory(setup["trajectory"], small_model(), tmp_path / "out", frame_time_fs=5.0,
                             options=OPTIONS, plots=False, progress=False)
    for average, column in EXPECTED.values():
        assert np.isnan(results.averages[average]).all()
        assert np.isnan(_csv_column(results.files["csv"], column)).all()
