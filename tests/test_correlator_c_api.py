"""The correlator's C entry points, called from C through the generated _correlator_api.h as
the LAMMPS fix will: two 'ranks' with an atom migrating between them, gathered states
reduced in atom-id order, plateau and result file — equal to the Python class's results."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import ase_mlnmr
from ase_mlnmr.core._correlator import StreamingCorrelator, plateau
from ase_mlnmr.trajectory.correlation import read_result

C_SOURCE = r"""
#include <Python.h>
#include <string.h>
#include "mlnmr_core.h"
#include "_correlator_api.h"

static int ensure_imported(void) {
    static int done = 0;
    if (!done) {
        PyGILState_STATE state = PyGILState_Ensure();
        int ok = import_ase_mlnmr__core___correlator();
        PyGILState_Release(state);
        if (ok < 0) return -1;
        done = 1;
    }
    return 0;
}

/* values [T][N][5]; atoms with even index live on rank a, odd on rank b; atom 0 migrates
   to b after half the frames. Returns a status; fills sums/counts [2][1][2][n_lag]. */
int shim_run(int n_atoms, int n_frames, const double *values, const int64_t *ids, const int32_t *groups,
             double *sums, double *counts, double *plateau_out, const char *path, int64_t *n_lag_out) {
    if (ensure_imported() < 0) return -100;
    mlnmr_corr_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_channels = 1; cfg.dim[0] = 5; cfg.interval[0] = 10; cfg.dt_fs = 0.5;
    cfg.p = 8; cfg.m = 2; cfg.n_levels = 5; cfg.n_groups = 2; cfg.fluctuation_sums = 1;
    mlnmr_correlator rank[2];
    int status = mlnmr_corr_init(&rank[0], &cfg);
    if (status) return status;
    double global[64];
    mlnmr_corr_config restored;
    if ((status = mlnmr_corr_pack_global(&cfg, global))) return status;
    if ((status = mlnmr_corr_unpack_global(global, &restored))) return status;
    if ((status = mlnmr_corr_init(&rank[1], &restored))) return status;
    int owner[256];
    for (int i = 0; i < n_atoms; ++i) owner[i] = i % 2;
    int64_t state_size = mlnmr_corr_atom_state_size(&cfg);
    double *buffer = malloc(sizeof(double) * state_size * n_atoms);
    int64_t sel_ids[256]; int32_t sel_groups[256]; double sel_values[256 * 5];
    for (int t = 0; t < n_frames; ++t) {
        if (t == n_frames / 2) {
            if ((status = mlnmr_corr_pack_atom(&rank[0], ids[0], buffer, 1))) return status;
            if ((status = mlnmr_corr_unpack_atom(&rank[1], buffer))) return status;
            owner[0] = 1;
        }
        for (int r = 0; r < 2; ++r) {
            int n = 0;
            for (int i = 0; i < n_atoms; ++i) {
                if (owner[i] != r) continue;
                sel_ids[n] = ids[i]; sel_groups[n] = groups[i];
                memcpy(sel_values + 5 * n, values + ((int64_t)t * n_atoms + i) * 5, 5 * sizeof(double));
                ++n;
            }
            int64_t bad = -1;
            if ((status = mlnmr_corr_add(&rank[r], 0, 10 * (int64_t)t, n, sel_ids, sel_groups, sel_values, &bad)))
                return status;
        }
    }
    if ((status = mlnmr_corr_pack_all(&rank[1], buffer))) return status;
    if ((status = mlnmr_corr_pack_all(&rank[0], buffer + rank[1].n_atoms * state_size))) return status;
    int64_t n_lag = mlnmr_corr_n_lags(&cfg);
    *n_lag_out = n_lag;
    if ((status = mlnmr_corr_reduce(&cfg, n_atoms, buffer, 2, 0, sums, counts))) return status;
    double *lags = malloc(sizeof(double) * n_lag);
    double *g = malloc(sizeof(double) * 2 * n_lag);
    double *total_sums = malloc(sizeof(double) * 2 * n_lag);
    double *total_counts = malloc(sizeof(double) * 2 * n_lag);
    mlnmr_corr_lags_fs(&cfg, 0, lags);
    for (int grp = 0; grp < 2; ++grp) {
        mlnmr_corr_normalised(2, n_lag, sums + grp * 2 * n_lag, counts + grp * 2 * n_lag, g + grp * n_lag);
        for (int64_t l = 0; l < n_lag; ++l) {
            total_sums[grp * n_lag + l] = sums[grp * 2 * n_lag + l] + sums[grp * 2 * n_lag + n_lag + l];
            total_counts[grp * n_lag + l] = counts[grp * 2 * n_lag + l] + counts[grp * 2 * n_lag + n_lag + l];
        }
    }
    status = mlnmr_corr_plateau(n_lag, lags, 2, sums, counts, 0.5 * n_frames * 10 * 0.5, -1.0, -1.0, plateau_out);
    if (status) return status;
    const char *group_names[2] = {"Al", "O"};
    const char *channel_names[1] = {"efg"};
    status = mlnmr_corr_write_result(path, "{\"format\": \"ase_mlnmr.correlation\", \"version\": 1}", 2,
                                     group_names, 1, channel_names, n_lag, lags, g, total_sums, total_counts);
    mlnmr_corr_free(&rank[0]);
    mlnmr_corr_free(&rank[1]);
    free(buffer); free(lags); free(g); free(total_sums); free(total_counts);
    return status;
}
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    include = Path(ase_mlnmr.get_include())
    if not (include / "_correlator_api.h").exists():
        pytest.skip("generated _correlator_api.h not built")
    build = tmp_path_factory.mktemp("corr_capi")
    (build / "shim.c").write_text(C_SOURCE)
    library = build / "libshim.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", f"-I{sysconfig.get_paths()['include']}", f"-I{include}",
                    str(build / "shim.c"), "-o", str(library)], check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.shim_run.restype = ctypes.c_int
    return lib


def test_c_entry_points_match_the_python_class(shim, tmp_path):
    rng = np.random.default_rng(3)
    n_atoms, n_frames = 9, 300
    values = np.ascontiguousarray(rng.normal(size=(n_frames, n_atoms, 5)) + rng.normal(size=(1, n_atoms, 5)))
    ids = np.array([40, 7, 13, 2, 99, 5, 61, 8, 30], dtype=np.int64)
    groups = (ids % 2).astype(np.int32)
    reference = StreamingCorrelator([5], [10], 0.5, p=8, m=2, n_levels=5, n_groups=2)
    for t in range(n_frames):
        reference.add(0, 10 * t, ids, groups, values[t])
    ref_sums, ref_counts = reference.reduce(2)
    n_lag = reference.n_lags
    sums, counts, result = np.zeros(2 * 2 * n_lag), np.zeros(2 * 2 * n_lag), np.zeros(4)
    n_lag_out = ctypes.c_int64()
    path = tmp_path / "acf.csv"

    def ptr(array):
        return ctypes.c_void_p(array.ctypes.data)

    status = shim.shim_run(n_atoms, n_frames, ptr(values), ptr(ids), ptr(groups), ptr(sums), ptr(counts),
                           ptr(result), str(path).encode(), ctypes.byref(n_lag_out))
    assert status == 0
    assert n_lag_out.value == n_lag
    np.testing.assert_array_equal(sums.reshape(ref_sums.shape), ref_sums)
    np.testing.assert_array_equal(counts.reshape(ref_counts.shape), ref_counts)
    expected = plateau(reference.lags_fs(0), ref_sums[0, 0], ref_counts[0, 0], 0.5 * n_frames * 10 * 0.5)
    assert result[0] == expected["P"] and result[1] == expected["P_err"]
    header, tables = read_result(path)
    assert header["version"] == 1 and set(tables) == {("Al", "efg"), ("O", "efg")}
    total = ref_sums[0, 0].sum(axis=0)  # group 0 is named "Al" in the shim
    valid = ref_counts[0, 0].sum(axis=0) > 0
    np.testing.assert_array_equal(tables[("Al", "efg")]["sum"], total[valid])
    np.testing.assert_array_equal(tables[("Al", "efg")]["lag_fs"], reference.lags_fs(0)[valid])
    assert not path.with_name("acf.csv.tmp").exists()
