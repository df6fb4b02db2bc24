"""The C entry points are callable from C: a small shared library compiled here imports
them through the generated _soap_core_api.h, exactly as the LAMMPS plugin will, and must
give the same numbers as the Python wrappers."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import ase_mlnmr
from ase_mlnmr.descriptors import LambdaSOAP, SOAP

from conftest import random_structure

C_SOURCE = r"""
#include <Python.h>
#include "mlnmr_core.h"
#include "_soap_core_api.h"

static int ensure_imported(void) {
    static int done = 0;
    if (!done) {
        PyGILState_STATE state = PyGILState_Ensure();
        int ok = import_ase_mlnmr__core___soap_core();
        PyGILState_Release(state);
        if (ok < 0) return -1;
        done = 1;
    }
    return 0;
}

int c_power_spectrum(const mlnmr_soap_spec *spec, int64_t n, const int64_t *offsets,
                     const double *vectors, const int32_t *species, double *out, int64_t *err) {
    if (ensure_imported() < 0) return -100;
    return mlnmr_power_spectrum(spec, n, offsets, vectors, species, out, err);
}

int c_contract(const mlnmr_soap_spec *spec, const mlnmr_lambda_spec *lam, const double *pair_weights,
               const double *two_body, int64_t n, const int64_t *offsets, const double *vectors,
               const int32_t *species, double *out, int64_t *err) {
    if (ensure_imported() < 0) return -100;
    mlnmr_contraction weights;
    weights.pair_weights = pair_weights;
    weights.two_body_weights = two_body;
    return mlnmr_lambda_contract(spec, lam, &weights, n, offsets, vectors, species, out, err);
}
"""


@pytest.fixture(scope="module")
def c_library(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    include = Path(ase_mlnmr.get_include())
    if not (include / "_soap_core_api.h").exists():
        pytest.skip("generated _soap_core_api.h not installed")
    build = tmp_path_factory.mktemp("capi")
    source = build / "shim.c"
    source.write_text(C_SOURCE)
    library = build / "libshim.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", f"-I{sysconfig.get_paths()['include']}", f"-I{include}",
         str(source), "-o", str(library)],
        check=True, capture_output=True,
    )
    return ctypes.CDLL(str(library))  # CDLL drops the GIL during calls, as a LAMMPS rank would run


def _ptr(array):
    return ctypes.c_void_p(array.ctypes.data)


def test_power_spectrum_through_c_api(c_library):
    atoms = random_structure(25, seed=8)
    soap = SOAP(["Si", "O", "Na"], r_cut=4.0, n_max=4, l_max=3, sigma=0.4)
    nl, species = soap.neighbour_list(atoms)
    species = np.ascontiguousarray(species, dtype=np.int32)
    out = np.zeros((len(atoms), soap.n_features))
    err = ctypes.c_int64(-1)
    status = c_library.c_power_spectrum(ctypes.c_void_p(soap._core.spec_address), ctypes.c_int64(len(atoms)),
                                        _ptr(nl.offsets), _ptr(nl.vectors), _ptr(species), _ptr(out),
                                        ctypes.byref(err))
    assert status == 0
    np.testing.assert_array_equal(out, soap.create(atoms))


def test_contracted_lambda_model_and_error_codes_through_c_api(c_library):
    atoms = random_structure(25, seed=9)
    descriptor = LambdaSOAP(["Si", "O", "Na"], r_cut=4.0, n_max=3, l_max=3, sigma=0.4)
    pair_weights, two_body = descriptor.fold_weights(np.random.default_rng(1).normal(size=descriptor.n_features))
    nl, species = descriptor.neighbour_list(atoms)
    species = np.ascontiguousarray(species, dtype=np.int32)
    out = np.zeros((len(atoms), 5))
    err = ctypes.c_int64(-1)
    args = [ctypes.c_void_p(descriptor._core.spec_address), ctypes.c_void_p(descriptor._lambda_core.spec_address),
            _ptr(pair_weights), _ptr(two_body), ctypes.c_int64(len(atoms)), _ptr(nl.offsets)]
    assert c_library.c_contract(*args, _ptr(nl.vectors), _ptr(species), _ptr(out), ctypes.byref(err)) == 0
    np.testing.assert_array_equal(out, descriptor.contract_folded(nl.offsets, nl.vectors, species, pair_weights, two_body))
    # a NaN displacement and a bad species index come back as status codes naming the entry
    bad_vectors = nl.vectors.copy()
    bad_vectors[7] = np.nan
    assert c_library.c_contract(*args, _ptr(bad_vectors), _ptr(species), _ptr(out), ctypes.byref(err)) == 2
    assert err.value == 7
    bad_species = species.copy()
    bad_species[3] = 17
    assert c_library.c_contract(*args, _ptr(nl.vectors), _ptr(bad_species), _ptr(out), ctypes.byref(err)) == 3
    assert err.value == 3
