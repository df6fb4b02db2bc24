"""Build the Cython numerical core of ase_mlnmr.

The extensions compiled here are the one implementation of the hot loops (neighbour
search, spherical expansion, SOAP/lambda-SOAP features, contracted linear models)
shared by the ASE provider, the trajectory tools and, through the generated
``*_api.h`` headers in ``ase_mlnmr/core/``, the LAMMPS plugin in ``lammps_plugin/``.
"""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

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
]

setup(
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
