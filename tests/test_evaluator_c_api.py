"""The evaluator's C API from a C program that does not link libpython (it opens libpython
and the evaluator with mlnmr_evaluator_load, as the standalone lmp binary will), and from
a Python process through ctypes (Python running, GIL not held): same numbers as
NMRModel.predict on a periodic structure; status messages for an unknown element, NaN and
coincident atoms; the exception text for a corrupt model file."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import ase_mlnmr
from ase_mlnmr.core import evaluator as ev
from ase_mlnmr.core.neighbours import neighbour_list_from_atoms

from conftest import random_structure
from test_evaluator import build_model

PROGRAM = r"""
#define MLNMR_EVALUATOR_LOADER
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "mlnmr_core.h"

static void *read_all(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END); *size = ftell(f); fseek(f, 0, SEEK_SET);
    void *data = malloc(*size);
    if (fread(data, 1, *size, f) != (size_t)*size) { fclose(f); return NULL; }
    fclose(f);
    return data;
}

static void report(mlnmr_evaluator_functions *api, const char *label, int status, int64_t centre, int64_t pair) {
    printf("STATUS %s %d %lld %lld %s\n", label, status, (long long)centre, (long long)pair,
           api->status_message(status));
}

int main(int argc, char **argv) {
    /* argv: libpython evaluator-library model csr-file out-file corrupt-model */
    char error[2048];
    mlnmr_evaluator_functions api;
    if (mlnmr_evaluator_load(argv[1], argv[2], &api, error, sizeof error) != 0) {
        printf("LOAD %s\n", error);
        return 2;
    }
    mlnmr_evaluator *bad = api.create(argv[6], MLNMR_EVALUATOR_API_VERSION, error, sizeof error);
    printf("CORRUPT %s %s\n", bad == NULL ? "null" : "non-null", error);
    mlnmr_evaluator *evaluator = api.create(argv[3], MLNMR_EVALUATOR_API_VERSION, error, sizeof error);
    if (evaluator == NULL) {
        printf("CREATE %s\n", error);
        return 3;
    }
    printf("LAYOUT %d %d %d\n", MLNMR_EVALUATOR_API_VERSION, MLNMR_OUT_MS_L1_STD, MLNMR_OUT_WIDTH);
    printf("CUTOFF %.17g\n", api.cutoff(evaluator));
    for (int k = 0; k < api.n_elements(evaluator); ++k) {
        int z = api.element(evaluator, k);
        printf("ELEMENT %d %u\n", z, api.element_outputs(evaluator, z));
    }
    const mlnmr_output_field *fields;
    int n_fields = api.output_fields(&fields);
    for (int k = 0; k < n_fields; ++k) {
        printf("FIELD %s %d %d %s\n", fields[k].name, fields[k].offset, fields[k].width, fields[k].unit);
    }
    long size;
    char *csr = read_all(argv[4], &size);
    int64_t n = ((int64_t *)csr)[0], n_pairs = ((int64_t *)csr)[1];
    int32_t *centre_numbers = (int32_t *)(csr + 16);
    int64_t *offsets = (int64_t *)(csr + 16 + 4 * n + (n % 2 ? 4 : 0));
    double *vectors = (double *)(offsets + n + 1);
    int32_t *numbers = (int32_t *)(vectors + 3 * n_pairs);
    double *out = malloc(sizeof(double) * n * MLNMR_OUT_WIDTH);
    int64_t centre, pair;
    int status = api.predict(evaluator, n, centre_numbers, offsets, vectors, numbers, MLNMR_WANT_ALL, 2, out,
                             &centre, &pair);
    report(&api, "ok", status, centre, pair);
    FILE *f = fopen(argv[5], "wb");
    fwrite(out, sizeof(double), n * MLNMR_OUT_WIDTH, f);
    fclose(f);
    /* bad input: an element without a model, NaN, coincident atoms */
    int32_t calcium = 20;
    status = api.predict(evaluator, 1, &calcium, offsets, vectors, numbers, MLNMR_WANT_ALL, 1, out, &centre, &pair);
    report(&api, "element", status, centre, pair);
    int64_t k = offsets[3] + 1;
    double saved = vectors[3 * k];
    vectors[3 * k] = NAN;
    status = api.predict(evaluator, n, centre_numbers, offsets, vectors, numbers, MLNMR_WANT_ALL, 1, out,
                         &centre, &pair);
    report(&api, "nan", status, centre, pair);
    vectors[3 * k] = 1e-7; vectors[3 * k + 1] = 0.0; vectors[3 * k + 2] = 0.0;
    status = api.predict(evaluator, n, centre_numbers, offsets, vectors, numbers, MLNMR_WANT_ALL, 1, out,
                         &centre, &pair);
    report(&api, "coincident", status, centre, pair);
    (void)saved;
    api.free(evaluator);
    printf("DONE\n");
    return 0;
}
"""


def _libpython() -> str:
    libdir = sysconfig.get_config_var("LIBDIR")
    for name in (sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")):
        if name and (Path(libdir) / name).exists():
            return str(Path(libdir) / name)
    pytest.skip("no shared libpython")


def _write_csr(path: Path, atoms, cutoff) -> None:
    nl = neighbour_list_from_atoms(atoms, cutoff)
    n = len(atoms)
    with open(path, "wb") as f:
        f.write(np.array([n, nl.n_pairs], dtype=np.int64).tobytes())
        f.write(atoms.numbers.astype(np.int32).tobytes())
        if n % 2:
            f.write(b"\0" * 4)
        f.write(nl.offsets.astype(np.int64).tobytes())
        f.write(np.ascontiguousarray(nl.vectors, dtype=np.float64).tobytes())
        f.write(atoms.numbers[nl.neighbours].astype(np.int32).tobytes())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    folder = tmp_path_factory.mktemp("evaluator_c_api")
    model = build_model()
    model_path = model.save(folder / "model.npz")
    corrupt = folder / "corrupt.npz"
    corrupt.write_bytes(b"this is not a model file")
    atoms = random_structure(40, symbols=("Si", "O", "O", "Na"), seed=60, min_distance=1.5)
    _write_csr(folder / "csr.bin", atoms, model.evaluator().cutoff)
    source = folder / "program.c"
    source.write_text(PROGRAM)
    binary = folder / "program"
    subprocess.run([compiler, "-O1", f"-I{ase_mlnmr.get_include()}", str(source), "-o", str(binary), "-ldl"],
                   check=True, capture_output=True)
    linked = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    assert "libpython" not in linked
    return {"model": model, "model_path": model_path, "corrupt": corrupt, "atoms": atoms, "folder": folder,
            "binary": binary}


def test_c_program_without_python_matches_nmr_model_predict(files):
    folder = files["folder"]
    env = dict(os.environ, PYTHONPATH=str(Path(ase_mlnmr.__file__).parents[1]), MLNMR_PYTHON=sys.executable)
    result = subprocess.run([str(files["binary"]), _libpython(), ev.library_path(), str(files["model_path"]),
                             str(folder / "csr.bin"), str(folder / "out.bin"), str(files["corrupt"])],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "DONE" in lines
    # the exception text of a corrupt model file
    corrupt = next(line for line in lines if line.startswith("CORRUPT"))
    assert corrupt.startswith("CORRUPT null ModelFileError:") and "corrupt.npz" in corrupt
    model, atoms = files["model"], files["atoms"]
    assert float(next(line for line in lines if line.startswith("CUTOFF")).split()[1]) == model.evaluator().cutoff
    elements = {int(line.split()[1]): int(line.split()[2]) for line in lines if line.startswith("ELEMENT")}
    assert elements == {8: sum(ev.HAS[k] for k in ("ms_iso", "efg", "ood", "cq")), 11: ev.HAS["ms_iso"],
                        14: sum(ev.HAS[k] for k in ("ms_iso", "ms_aniso", "ms_antisym", "efg", "ood", "delta_iso"))}
    fields = {line.split()[1]: (int(line.split()[2]), int(line.split()[3])) for line in lines
              if line.startswith("FIELD")}
    assert fields == {name: (offset, width) for name, (offset, width, _) in ev.OUTPUT_FIELDS.items()}
    layout = next(line for line in lines if line.startswith("LAYOUT")).split()[1:]
    expected_layout = [ev.API_VERSION, ev.OUTPUT_FIELDS["ms_l1_std"][0], ev.WIDTH]
    assert [int(value) for value in layout] == expected_layout == [3, 52, 55]
    out = np.fromfile(folder / "out.bin").reshape(len(atoms), ev.WIDTH)
    prediction = model.predict(atoms)
    assert np.isnan(ev.output_field(out, "ms_l1_std")).all()   # Si's σ(1) model has no committee
    for name in ("ms", "ms_iso", "delta_iso", "efg", "cq", "eta_q", "ood", "ood_residual"):
        expected = getattr(prediction, name).reshape(len(atoms), -1)
        np.testing.assert_array_equal(ev.output_field(out, name).reshape(len(atoms), -1), expected, err_msg=name)
    status = {line.split()[1]: line.split(maxsplit=5)[2:] for line in lines if line.startswith("STATUS")}
    assert status["ok"][0] == "0"
    assert status["element"][:2] == ["6", "0"] and "element has no model" in status["element"][3]
    nan_centre = int(status["nan"][1])
    assert status["nan"][0] == "2" and "NaN or inf" in status["nan"][3] and nan_centre == 3
    assert status["coincident"][0] == "1" and "coincident" in status["coincident"][3]


def test_c_api_inside_python_without_the_gil(files):
    library = ctypes.CDLL(ev.library_path())   # ctypes calls release the GIL
    create = library.mlnmr_evaluator_create
    create.restype = ctypes.c_void_p
    create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    library.mlnmr_evaluator_cutoff.restype = ctypes.c_double
    library.mlnmr_evaluator_cutoff.argtypes = [ctypes.c_void_p]
    library.mlnmr_evaluator_free.argtypes = [ctypes.c_void_p]
    library.mlnmr_status_message.restype = ctypes.c_char_p
    error = ctypes.create_string_buffer(1024)
    assert create(str(files["corrupt"]).encode(), ev.API_VERSION, error, 1024) is None
    assert error.value.decode().startswith("ModelFileError")
    assert create(str(files["model_path"]).encode(), ev.API_VERSION + 1, error, 1024) is None
    assert b"API version" in error.value
    handle = create(str(files["model_path"]).encode(), ev.API_VERSION, error, 1024)
    assert handle, error.value
    assert library.mlnmr_evaluator_cutoff(handle) == files["model"].evaluator().cutoff
    atoms = files["atoms"]
    nl = neighbour_list_from_atoms(atoms, files["model"].evaluator().cutoff)
    n = len(atoms)
    numbers = atoms.numbers.astype(np.int32)
    neighbours = numbers[nl.neighbours].copy()
    offsets = nl.offsets.astype(np.int64)
    vectors = np.ascontiguousarray(nl.vectors)
    out = np.empty((n, ev.WIDTH))
    centre, pair = ctypes.c_int64(), ctypes.c_int64()
    p = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    status = library.mlnmr_evaluator_predict(ctypes.c_void_p(handle), ctypes.c_int64(n), p(numbers), p(offsets),
                                             p(vectors), p(neighbours), ctypes.c_uint(ev.WANT_ALL), 1, p(out),
                                             ctypes.byref(centre), ctypes.byref(pair))
    assert status == 0
    np.testing.assert_array_equal(ev.output_field(out, "ms"), files["model"].predict(atoms).ms.reshape(n, 9))
    assert library.mlnmr_status_message(99) == b"unknown status code"
    library.mlnmr_evaluator_free(ctypes.c_void_p(handle))
