# C-level description of the streaming time-correlation accumulator. The types live in
# the hand-written header mlnmr_core.h (block at its end) so that C/C++ callers (the
# LAMMPS fix) see the same definitions; the entry points are the ``cdef api`` functions of
# _correlator.pyx, exported through the generated _correlator_api.h.

from libc.stdint cimport int32_t, int64_t

cdef extern from "mlnmr_core.h":
    int MLNMR_CORR_MAX_CHANNELS
    int MLNMR_CORR_MAX_DIM
    int MLNMR_CORR_STATE_VERSION

    cdef enum mlnmr_corr_status:
        MLNMR_CORR_OK
        MLNMR_CORR_ERR_ARGUMENT
        MLNMR_CORR_ERR_MEMORY
        MLNMR_CORR_ERR_CHANNEL
        MLNMR_CORR_ERR_GROUP
        MLNMR_CORR_ERR_STEP
        MLNMR_CORR_ERR_NONFINITE
        MLNMR_CORR_ERR_UNKNOWN_ATOM
        MLNMR_CORR_ERR_DUPLICATE_ATOM
        MLNMR_CORR_ERR_STATE
        MLNMR_CORR_ERR_NO_PLATEAU
        MLNMR_CORR_ERR_IO

    ctypedef struct CorrConfig "mlnmr_corr_config":
        int n_channels
        int dim[8]
        int64_t interval[8]
        double dt_fs
        int p
        int m
        int n_levels
        int n_groups
        int fluctuation_sums

    ctypedef struct Correlator "mlnmr_correlator":
        CorrConfig config
        int64_t state_size
        int64_t n_atoms
        int64_t capacity
        double* states
        int64_t* ids
        int64_t table_size
        int64_t* table
