"""End to end on a small jiggled trajectory: time averages against per-frame predictions
made here with the public NMRModel.predict, both estimators, the identity behind the
scaling factor, the magres/CSV/JSON outputs, the fix-column path and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

from ase_mlnmr.cli import main
from ase_mlnmr.core.spherical_tensors import symmetric_traceless_to_l2
from ase_mlnmr.nmr.efg import quadrupolar_parameters
from ase_mlnmr.trajectory.analysis import AnalysisOptions
from ase_mlnmr.trajectory.correlation import read_result
from ase_mlnmr.trajectory.run import run_trajectory

from trajectory_helpers import jiggled_frames, small_model, write_dump, write_extxyz

N_FRAMES = 80
FRAME_TIME = 5.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    model = small_model()
    model_path = model.save(folder / "model.npz")
    trajectory = write_extxyz(folder / "traj.extxyz", jiggled_frames(N_FRAMES))
    frames = read(trajectory, ":")  # as stored (extended XYZ keeps 8 decimals)
    predictions = [model.predict(atoms) for atoms in frames]
    options = AnalysisOptions(p=8, m=2, n_levels=6, n_blocks=4)
    results = run_trajectory(trajectory, model, folder / "out", frame_time_fs=FRAME_TIME, options=options,
                             progress=False)
    return dict(folder=folder, model=model, model_path=model_path, frames=frames, predictions=predictions,
                results=results, options=options)


def test_time_averages_equal_the_mean_of_per_frame_predictions(setup):
    results, predictions, frames = setup["results"], setup["predictions"], setup["frames"]
    efg = np.mean([p.efg for p in predictions], axis=0)
    ms = np.mean([p.ms for p in predictions], axis=0)
    np.testing.assert_allclose(results.averages["efg"], efg, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(results.averages["ms"], ms, rtol=1e-12)
    delta = np.mean([p.delta_iso for p in predictions], axis=0)
    np.testing.assert_allclose(results.averages["delta_iso"], delta, rtol=1e-12, equal_nan=True)
    oxygen = np.array(frames[0].get_chemical_symbols()) == "O"
    reference = quadrupolar_parameters(efg[oxygen], "O", units="au")
    np.testing.assert_allclose(results.averages["cq"][oxygen], reference.cq, rtol=1e-10)
    np.testing.assert_allclose(results.averages["eta"][oxygen], reference.eta, rtol=1e-8, atol=1e-10)
    assert np.all(np.isnan(results.averages["cq"][~oxygen]))  # 29Si has no quadrupole moment
    magres = read(results.files["magres"])
    np.testing.assert_allclose(magres.get_array("efg"), efg, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(magres.positions, frames[-1].positions, atol=1e-6)


def test_scaling_factor_identity_and_estimators(setup):
    """With the all-origins G of the result file: Σ|V̄|²/Σ⟨|V|²⟩ = (1/T)[1 + 2Σ(1 − s/T)G(s)]
    (V from the predictions made here), the RMS ratio in the JSON is its square root, and
    the streaming G equals the exact one inside the first level."""
    results, predictions, frames = setup["results"], setup["predictions"], setup["frames"]
    header, tables = read_result(results.files["correlation_fft"])
    assert header["estimator"] == "fft" and header["groups"] == ["O", "Si"]
    _, streaming = read_result(results.files["correlation_streaming"])
    scaling = json.loads(results.files["scaling"].read_text())
    symbols = np.array(frames[0].get_chemical_symbols())
    series = np.array([symmetric_traceless_to_l2(p.efg) for p in predictions])  # (T, N, 5)
    s = np.arange(1, N_FRAMES)
    for element in ("O", "Si"):
        x = series[:, symbols == element]
        left = np.sum(x.mean(axis=0) ** 2) / np.sum(np.mean(np.sum(x**2, axis=2), axis=0))
        table = tables[(element, "efg")]
        np.testing.assert_array_equal(table["lag_fs"], np.arange(N_FRAMES) * FRAME_TIME)
        right = (1 + 2 * np.sum((1 - s / N_FRAMES) * table["g"][1:])) / N_FRAMES
        assert right == pytest.approx(left, rel=1e-12)
        assert scaling[element]["rms_ratio"] == pytest.approx(np.sqrt(left), rel=1e-12)
        assert scaling[element]["cq_scale"] == pytest.approx(np.sqrt(scaling[element]["P"]), rel=1e-15)
        first = streaming[(element, "efg")]
        p = setup["options"].p
        np.testing.assert_allclose(first["g"][:p], table["g"][:p], rtol=1e-12)
        for channel in ("efg", "shift"):
            assert tables[(element, channel)]["g"][0] == 1.0


def test_fix_columns_give_the_predicted_results(setup, tmp_path):
    """A dump carrying the fix's per-atom columns (written here from the predictions at 17
    digits) is read instead of predicting: same time-averaged EFG and δiso."""
    frames, predictions = setup["frames"], setup["predictions"]
    components = np.array([symmetric_traceless_to_l2(p.efg) for p in predictions])
    columns = {f"f_nmr[{6 + k}]": components[:, :, k] for k in range(5)}
    columns["f_nmr[1]"] = np.array([p.ms_iso for p in predictions])
    columns["f_nmr[2]"] = np.array([np.nan_to_num(p.delta_iso, nan=np.nan) for p in predictions])
    dump = write_dump(tmp_path / "fix.dump", frames, steps=10 * np.arange(N_FRAMES), type_of={"Si": 1, "O": 2},
                      columns=columns)
    results = run_trajectory(dump, None, tmp_path / "out", type_map={1: "Si", 2: "O"}, timestep_fs=0.5,
                             nmr_columns="f_nmr", options=setup["options"], plots=False, progress=False)
    assert results.frame_time_fs == FRAME_TIME
    np.testing.assert_allclose(results.averages["efg"], setup["results"].averages["efg"], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(results.averages["delta_iso"], setup["results"].averages["delta_iso"], rtol=1e-12,
                               equal_nan=True)
    assert results.scaling["O"]["P"] == pytest.approx(setup["results"].scaling["O"]["P"], rel=1e-10)


def test_cli_and_its_errors(setup, tmp_path, capsys):
    folder = setup["folder"]
    out = tmp_path / "cli"
    code = main(["trajectory", str(setup["model_path"]), str(folder / "traj.extxyz"), "-o", str(out),
                 "--frame-time-fs", "5", "--stride", "2", "--no-plots", "-q", "--levels", "4", "--level-length", "8"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_frames"] == N_FRAMES // 2 and summary["frame_time_fs"] == 5.0
    assert "cq_scale" in capsys.readouterr().out
    assert main(["trajectory", str(setup["model_path"]), str(folder / "traj.extxyz"), "-o", str(tmp_path / "lean"),
                 "--frame-time-fs", "5", "--no-plots", "--no-series", "--no-exact", "-q", "--stop", "20"]) == 0
    assert not (tmp_path / "lean" / "series").exists() and (tmp_path / "lean" / "correlation_streaming.csv").exists()
    assert not (tmp_path / "lean" / "correlation_fft.csv").exists()
    for argv, message in (
        ([str(setup["model_path"]), str(folder / "traj.extxyz")], "give the time between frames"),
        (["missing.npz", str(folder / "traj.extxyz")], "model file not found"),
        ([str(folder / "traj.extxyz")], "give a model file"),
        ([str(setup["model_path"]), str(tmp_path / "none.dump"), "--timestep-fs", "1"], "trajectory file not found"),
        ([str(setup["model_path"]), str(folder / "traj.extxyz"), "--frame-time-fs", "5", "--stop", "1"],
         "need at least 2 frames"),
    ):
        assert main(["trajectory", *argv, "-o", str(tmp_path / "x"), "-q", "--no-plots"]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["trajectory", "m", "t", "--plateau-window", "50:10"])
    assert "START < END" in capsys.readouterr().err


def test_one_frame_chunks_and_changing_atoms(setup, tmp_path):
    """Chunks of one frame give the same averages up to round-off; a trajectory whose later
    frames carry an extra atom is refused, or followed on the first frame's atoms."""
    frames = setup["frames"][:12]
    results = run_trajectory(write_extxyz(tmp_path / "a.extxyz", frames), setup["model"], tmp_path / "one",
                             frame_time_fs=FRAME_TIME, options=setup["options"], plots=False, progress=False,
                             chunk_frames=1)
    reference = np.mean([p.efg for p in setup["predictions"][:12]], axis=0)
    np.testing.assert_allclose(results.averages["efg"], reference, rtol=1e-12, atol=1e-14)
    grown = [atoms.copy() for atoms in frames]
    for atoms in grown[6:]:
        atoms.append("O")
        atoms.positions[-1] = [4.4, 4.2, 4.7]
    path = write_extxyz(tmp_path / "grown.extxyz", grown)
    with pytest.raises(ValueError, match="frame 6: atoms changed"):
        run_trajectory(path, setup["model"], tmp_path / "g", frame_time_fs=FRAME_TIME, plots=False, progress=False)
    followed = run_trajectory(path, setup["model"], tmp_path / "g", frame_time_fs=FRAME_TIME, plots=False,
                              progress=False, allow_changing_atoms=True, options=setup["options"])
    n = len(frames[0])
    expected = np.mean([setup["model"].predict(atoms).efg[:n] for atoms in read(path, ":")], axis=0)
    np.testing.assert_allclose(followed.averages["efg"], expected, rtol=1e-12, atol=1e-14)
    assert len(read(followed.files["magres"])) == n
