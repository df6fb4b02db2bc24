# cython: language_level=3
"""Whole-model evaluator: every output of a trained NMRModel from one CSR neighbour list.

Built from a loaded :class:`ase_mlnmr.nmr_model.NMRModel` (``NMRModel.load`` stays the only
reader of model files) into flat C arrays per centre element; :func:`evaluate` runs without
the GIL and is also exported to C (``mlnmr_evaluator_predict``, ``mlnmr_core.h``).

Per centre (element e, neighbours within the largest cut-off, any order):

1. sort the neighbours canonically by (|r|², x, y, z, Z) (bitwise determinism);
2. per distinct spherical expansion of e (a component's r_cut, n_max, l_max, σ, species):
   keep the pairs with |r|² < r_cut², expand c_{anlm} (``_soap_core.expand_centre``);
3. λ-models (σ(2), σ(1), EFG): y_μ = Σ_f w_f q^{λμ}_f by the contracted path
   (``_soap_core.contract_centre``, weights folded per (l1, l2) pair);
4. σiso / OOD (Nyström): power spectrum p, preprocessed x, then for a block of centres
   K = k(X, Z) by one GEMM (``scipy.linalg.cython_blas``),
   σiso = (K w) y_std + y_mean, residual r = 1 − |L_p⁻¹ k_p|² (GEMMs over row blocks of the
   inverse of the leading p = ``ood_rank`` pivots' block of the pivoted-Cholesky factor),
   linear σiso = ((x − μ)/s)·w s_y + μ_y;
5. assembly: σ = σiso·1 + S(σ(2)) + A(σ(1)), δiso = −a(σiso − σref), V = S(EFG),
   Vzz, η (|Vzz| ≥ |Vyy| ≥ |Vxx|), CQ = (CQ_MHZ_PER_MB_AU · Q) Vzz, Haeberlen ζ, η of σ(2),
   OOD score = fraction of held-out training residuals ≤ r (1 for a centre without
   neighbours inside the OOD descriptor's r_cut).

Centres are processed in blocks of one element; threads (POSIX) take contiguous ranges
of the centres sorted by element. Every per-centre result depends only on that centre's
neighbours: the GEMM rows are independent (GEMM_WIDTH), sums run in a fixed order.
"""
import contextlib
import os
import threading

import numpy as np
cimport numpy as cnp
from libc.math cimport sqrt, pow, fabs, isfinite, acos, cos, NAN
from libc.stdlib cimport malloc, calloc, free, qsort
from libc.string cimport memset, memcpy
from libc.stdint cimport int32_t, int64_t, uintptr_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

from ase_mlnmr.core._soap_core cimport (
    SoapSpec, LambdaSpec, ContractionSpec, expand_centre, power_spectrum_from_coefficients,
    contract_centre, contraction_scratch_size, MLNMR_OK, MLNMR_ERR_COINCIDENT, MLNMR_ERR_NONFINITE, MLNMR_ERR_SPECIES,
    MLNMR_ERR_MEMORY, MLNMR_ERR_ARGUMENT,
)

cnp.import_array()

cdef extern from "mlnmr_core.h":
    enum:
        MLNMR_ERR_ELEMENT
        MLNMR_ERR_NEIGHBOUR_ELEMENT
        MLNMR_ERR_PYTHON
        MLNMR_ERR_VERSION
        MLNMR_N_STATUS
        MLNMR_EVALUATOR_API_VERSION
        MLNMR_OUT_MS
        MLNMR_OUT_MS_ISO
        MLNMR_OUT_DELTA_ISO
        MLNMR_OUT_MS_L2
        MLNMR_OUT_MS_ZETA
        MLNMR_OUT_MS_ETA
        MLNMR_OUT_EFG
        MLNMR_OUT_EFG_L2
        MLNMR_OUT_VZZ
        MLNMR_OUT_ETA_Q
        MLNMR_OUT_CQ
        MLNMR_OUT_OOD
        MLNMR_OUT_OOD_RESIDUAL
        MLNMR_OUT_MS_ISO_STD
        MLNMR_OUT_MS_L2_STD
        MLNMR_OUT_EFG_L2_STD
        MLNMR_OUT_VZZ_STD
        MLNMR_OUT_CQ_STD
        MLNMR_OUT_PQ_STD
        MLNMR_OUT_VZZ_AXIS_FLAG
        MLNMR_OUT_MS_L1_STD
        MLNMR_OUT_WIDTH
        MLNMR_WANT_SHIELDING
        MLNMR_WANT_EFG
        MLNMR_WANT_OOD
        MLNMR_WANT_ALL
        MLNMR_SKIP_UNKNOWN
        MLNMR_HAS_MS_ISO
        MLNMR_HAS_MS_ANISO
        MLNMR_HAS_MS_ANTISYM
        MLNMR_HAS_EFG
        MLNMR_HAS_OOD
        MLNMR_HAS_DELTA_ISO
        MLNMR_HAS_CQ
    ctypedef struct mlnmr_output_field:
        const char* name
        int offset
        int width
        const char* unit

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_attr_t:
        pass
    int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*) noexcept nogil,
                       void* arg)
    int pthread_join(pthread_t thread, void** retval)
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t* mutex, const void* attr)
    int pthread_mutex_lock(pthread_mutex_t* mutex)
    int pthread_mutex_unlock(pthread_mutex_t* mutex)

cdef extern from "<dlfcn.h>" nogil:
    ctypedef struct Dl_info:
        const char* dli_fname
    int dladdr(const void* address, Dl_info* info)
    void* dlopen(const char* filename, int flags)
    void* dlsym(void* handle, const char* symbol)
    int RTLD_NOW
    int RTLD_NOLOAD

ctypedef int (*set_threads_function)(int) noexcept nogil
#: ``openblas_set_num_threads_local`` of the library that serves scipy's cython_blas, or NULL
#: (another BLAS, an older OpenBLAS). It takes effect from any thread (OpenBLAS's plain
#: setter does not from threads other than the main one), but for the whole process.
cdef set_threads_function _blas_threads_local = NULL
cdef pthread_mutex_t _blas_mutex
cdef int _blas_holders = 0      # evaluator calls running now, in any thread
cdef int _blas_saved = 1        # the thread count to give back when the last one ends
pthread_mutex_init(&_blas_mutex, NULL)
cdef pthread_mutex_t _pool_mutex
pthread_mutex_init(&_pool_mutex, NULL)


cdef void hold_one_blas_thread() noexcept nogil:
    """BLAS on one thread while any evaluator call runs (counted over concurrent calls): a
    multi-threaded GEMM splits its work by the call's shape, so a row's sums would depend on
    the other rows of the call (see GEMM_WIDTH)."""
    if _blas_threads_local == NULL:
        return
    global _blas_holders, _blas_saved
    pthread_mutex_lock(&_blas_mutex)
    if _blas_holders == 0:
        _blas_saved = _blas_threads_local(1)
    _blas_holders += 1
    pthread_mutex_unlock(&_blas_mutex)


cdef void release_blas_threads() noexcept nogil:
    """End of hold_one_blas_thread: the last running call gives the thread count back."""
    if _blas_threads_local == NULL:
        return
    global _blas_holders
    pthread_mutex_lock(&_blas_mutex)
    _blas_holders -= 1
    if _blas_holders == 0:
        _blas_threads_local(_blas_saved)
    pthread_mutex_unlock(&_blas_mutex)


cdef void _find_blas_threads_local():
    """Look ``openblas_set_num_threads_local`` up in the library that holds dgemm."""
    global _blas_threads_local
    cdef Dl_info info
    cdef void* library
    if dladdr(<const void*>dgemm, &info) != 0 and info.dli_fname != NULL:
        library = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD)
        if library != NULL:
            _blas_threads_local = <set_threads_function>dlsym(library, b"openblas_set_num_threads_local")


_find_blas_threads_local()

API_VERSION = MLNMR_EVALUATOR_API_VERSION
WIDTH = MLNMR_OUT_WIDTH
WANT_SHIELDING = MLNMR_WANT_SHIELDING
WANT_EFG = MLNMR_WANT_EFG
WANT_OOD = MLNMR_WANT_OOD
WANT_ALL = MLNMR_WANT_ALL
SKIP_UNKNOWN = MLNMR_SKIP_UNKNOWN
HAS = {"ms_iso": MLNMR_HAS_MS_ISO, "ms_aniso": MLNMR_HAS_MS_ANISO, "ms_antisym": MLNMR_HAS_MS_ANTISYM,
       "efg": MLNMR_HAS_EFG, "ood": MLNMR_HAS_OOD, "delta_iso": MLNMR_HAS_DELTA_ISO, "cq": MLNMR_HAS_CQ}

#: Output fields: name -> (offset, width, unit); the C table mlnmr_output_fields() holds the same.
OUTPUT_FIELDS = {
    "ms": (MLNMR_OUT_MS, 9, "ppm"), "ms_iso": (MLNMR_OUT_MS_ISO, 1, "ppm"),
    "delta_iso": (MLNMR_OUT_DELTA_ISO, 1, "ppm"), "ms_l2": (MLNMR_OUT_MS_L2, 5, "ppm"),
    "ms_zeta": (MLNMR_OUT_MS_ZETA, 1, "ppm"), "ms_eta": (MLNMR_OUT_MS_ETA, 1, ""),
    "efg": (MLNMR_OUT_EFG, 9, "au"), "efg_l2": (MLNMR_OUT_EFG_L2, 5, "au"), "vzz": (MLNMR_OUT_VZZ, 1, "au"),
    "eta_q": (MLNMR_OUT_ETA_Q, 1, ""), "cq": (MLNMR_OUT_CQ, 1, "MHz"), "ood": (MLNMR_OUT_OOD, 1, ""),
    "ood_residual": (MLNMR_OUT_OOD_RESIDUAL, 1, ""),
    "ms_iso_std": (MLNMR_OUT_MS_ISO_STD, 1, "ppm"), "ms_l2_std": (MLNMR_OUT_MS_L2_STD, 5, "ppm"),
    "efg_l2_std": (MLNMR_OUT_EFG_L2_STD, 5, "au"), "vzz_std": (MLNMR_OUT_VZZ_STD, 1, "au"),
    "cq_std": (MLNMR_OUT_CQ_STD, 1, "MHz"), "pq_std": (MLNMR_OUT_PQ_STD, 1, "MHz"),
    "vzz_axis_flag": (MLNMR_OUT_VZZ_AXIS_FLAG, 1, ""), "ms_l1_std": (MLNMR_OUT_MS_L1_STD, 3, "ppm"),
}

cdef enum:
    N_OUTPUT_FIELDS = 21
cdef mlnmr_output_field[N_OUTPUT_FIELDS] _FIELDS
cdef list _FIELD_NAMES = []  # keeps the bytes alive

def _init_fields():
    cdef int k = 0
    if len(OUTPUT_FIELDS) != N_OUTPUT_FIELDS:
        raise ImportError(f"OUTPUT_FIELDS has {len(OUTPUT_FIELDS)} fields, the C table {N_OUTPUT_FIELDS}")
    for name, (offset, width, unit) in OUTPUT_FIELDS.items():
        name_b, unit_b = name.encode(), unit.encode()
        _FIELD_NAMES.extend([name_b, unit_b])
        _FIELDS[k].name = name_b
        _FIELDS[k].offset = offset
        _FIELDS[k].width = width
        _FIELDS[k].unit = unit_b
        k += 1

_init_fields()

STATUS_MESSAGES = {
    MLNMR_OK: "success",
    MLNMR_ERR_COINCIDENT: "coincident atoms: a neighbour is closer than 1e-4 Å to its centre",
    MLNMR_ERR_NONFINITE: "NaN or inf in a neighbour displacement vector",
    MLNMR_ERR_SPECIES: "neighbour species index outside the descriptor's species",
    MLNMR_ERR_MEMORY: "out of memory in the evaluator",
    MLNMR_ERR_ARGUMENT: "invalid arguments: offsets must start at 0 and not decrease, n_threads >= 1",
    MLNMR_ERR_ELEMENT: "a centre's element has no model (use skip-unknown to leave it unpredicted)",
    MLNMR_ERR_NEIGHBOUR_ELEMENT: "a neighbour's element is not among the model's neighbour species",
    MLNMR_ERR_PYTHON: "evaluator creation failed in Python (see the error text)",
    MLNMR_ERR_VERSION: "the caller was built for another evaluator API version",
}
cdef list _STATUS_BYTES = [STATUS_MESSAGES.get(k, "unknown status").encode() for k in range(MLNMR_N_STATUS)]
cdef const char* _UNKNOWN_STATUS = b"unknown status code"
cdef const char* _STATUS_TEXT[10]
for _k in range(MLNMR_N_STATUS):
    _STATUS_TEXT[_k] = <const char*>_STATUS_BYTES[_k]


#: Centres per block of the kernel step (memory per thread ~ block * (D + m) * 8 bytes):
#: one GEMM per block, so the inducing points Z are packed by BLAS once per block of this
#: many centres.
DEFAULT_BLOCK_SIZE = 1024
#: Every GEMM call has a multiple of this many centres (the block zero-padded) and at least
#: MIN_GEMM_ROWS of them. OpenBLAS computes small products (below 100³ multiply-adds) with
#: small-matrix kernels that sum in another order than its blocked GEMM; a product with at
#: least MIN_GEMM_ROWS rows and more than SMALL_SHAPE multiply-adds per row is always a
#: blocked GEMM, whose row sums do not depend on the row's place nor on how many rows the
#: call has (tests/test_evaluator_large_calls.py). Smaller shapes are summed by our own
#: fixed-order loops (``small_product``). Triangular products (TRMM) depend on both, so
#: none is used.
cdef int GEMM_COLUMNS = 8
GEMM_WIDTH = GEMM_COLUMNS
cdef int MIN_ROWS = 256
MIN_GEMM_ROWS = MIN_ROWS
#: Multiply-adds per row at or below which a product is summed by a loop, not by BLAS
#: (MIN_GEMM_ROWS × SMALL_SHAPE = 2²¹, twice OpenBLAS's small-matrix limit).
cdef int64_t SMALL_SHAPE_C = 8192
SMALL_SHAPE = SMALL_SHAPE_C
#: Rows of L_p⁻¹ per GEMM of the OOD residual (the blocks are balanced: ⌈p / ⌈p / 128⌉⌉).
OOD_BLOCK_ROWS = 128
cdef int MAX_EXPANSIONS = 8  # distinct descriptors per element (5 components at most)
cdef int MAX_MEMBERS = 64    # committee members per property model


# --------------------------------------------------------------------------------------
# C data
# --------------------------------------------------------------------------------------
cdef struct Expansion:
    const SoapSpec* spec
    double r_cut2
    int n_coeff
    int32_t channel_of_z[120]   # density-channel index per atomic number, -1: not a species

cdef struct LambdaModel:
    int expansion               # -1: absent
    int n_mu
    const LambdaSpec* lam
    ContractionSpec weights
    int n_members               # committee members (0: none)
    const double* member_pair_weights  # per (l1, l2) pair [M][n_members][M]: member folded weights, the
                                #   index contracted first outermost (see lambda_member_std)
    const int32_t* member_swap  # per pair: 1 when c_{l1} is contracted first (2 l1 + 1 < 2 l2 + 1)
    const double* member_two_body  # [n_members][M] or NULL
    double calibration          # committee calibration: scale a (α), power b, floor c
    double cal_power
    double cal_floor

cdef struct KernelModel:
    int expansion               # -1: absent
    int linear                  # 1: ridge on the raw power spectrum
    int dot                     # 1: dot-product kernel, 0: Gaussian
    int zeta
    int normalize               # Gaussian: rows to unit length before centring
    int single                  # 1: float32 kernel block
    int n_features
    int m                       # inducing points
    double inv_two_l2           # 1 / (2 l²)
    const double* x_mean        # [D]
    const double* x_scale       # [D]
    const double* inducing      # [m][D] preprocessed
    const float* inducing32     # [m][D] (single)
    const double* inducing_sq   # [m]
    const double* weights       # [m] Nyström / [D] linear (scaled weights)
    double y_mean
    double y_scale
    int ood_rank                # p: leading pivots used by the OOD residual
    int ood_block               # rows of L_p⁻¹ per GEMM of the residual
    const double* chol_inverse  # [p][p] lower, row-major: L_p⁻¹, K_ZpZp = L_p L_pᵀ (OOD), zeros above
    const double* reference     # [n_reference] sorted held-out residuals
    int64_t n_reference
    int n_members               # committee members (0: none)
    const double* member_weights  # [m][n_members] (Nyström weights of every member)
    double calibration          # committee calibration: scale a (α), power b, floor c
    double cal_power
    double cal_floor

cdef struct Element:
    int atomic_number
    int n_expansions
    Expansion expansions[8]
    double r_cut2               # largest of the element's components
    KernelModel iso
    KernelModel ood
    int ood_shares_iso
    LambdaModel aniso
    LambdaModel antisym
    LambdaModel efg
    int has_calibration
    double cal_slope
    double cal_ref
    double cq_per_au            # MHz per a.u. of Vzz (NaN: no quadrupolar isotope)
    unsigned outputs            # MLNMR_HAS_* bits

cdef struct Workspace:
    # one thread's work buffers, sized by the evaluator (block size, largest model)
    double* coeff
    double* F_iso
    double* F_ood
    float* F32
    double* K
    double* phi
    double* small
    double* member_buffer
    double* iso_member_values
    double* member_scratch
    int* bare_ood

cdef enum:
    MAX_SPARE_WORKSPACES = 8

cdef struct WorkspacePool:
    # Buffers of finished calls (at most MAX_SPARE_WORKSPACES, one per thread of the widest
    # call): a call takes one or allocates, and gives it back when it ends, so repeated calls
    # do not fault tens of MiB of fresh pages in (≈ 12 000 page faults a call on the 14 400-atom
    # benchmark box). Guarded by _pool_mutex; freed with the evaluator.
    int n_spare
    Workspace* spare[MAX_SPARE_WORKSPACES]

cdef struct EvaluatorData:
    int api_version
    int n_elements
    Element* elements
    int element_of_z[120]
    double cutoff
    int block_size
    int max_features
    int max_inducing
    int max_ood_rank
    int max_coeff
    int max_scratch
    int64_t max_member_scratch  # doubles of lambda_member_std's scratch for the largest committee model
    WorkspacePool* pool         # work buffers of finished calls, kept for the next ones

cdef struct Pair:
    double d2
    double x
    double y
    double z
    int32_t number
    int64_t entry

cdef inline int pair_before(const Pair* p, const Pair* q) noexcept nogil:
    """1 if p comes before q in the canonical neighbour order: by d2, then x, y, z, atomic number."""
    if p.d2 != q.d2:
        return p.d2 < q.d2
    if p.x != q.x:
        return p.x < q.x
    if p.y != q.y:
        return p.y < q.y
    if p.z != q.z:
        return p.z < q.z
    return p.number < q.number


cdef int _compare_pairs(const void* a, const void* b) noexcept nogil:
    cdef const Pair* p = <const Pair*>a
    cdef const Pair* q = <const Pair*>b
    if pair_before(p, q):
        return -1
    return 1 if pair_before(q, p) else 0


cdef int INSERTION_SORT_MAX = 64  # neighbours of a centre: insertion sort up to this many, qsort above


cdef struct PairKey:
    double d2
    int64_t index


cdef void sort_pairs(Pair* pairs, PairKey* keys, Pair* sorted_pairs, int64_t n) noexcept nogil:
    """Sort a centre's pairs into the canonical order (a total order: the result does not depend
    on the input order); insertion sort for the usual few dozen, qsort for more. The insertion
    sort moves 16-byte keys (d2, index), falling back to :func:`pair_before` on equal d2, and
    then gathers the pairs once through ``sorted_pairs`` (both buffers hold n)."""
    cdef int64_t k, j
    cdef PairKey moving
    if n > INSERTION_SORT_MAX:
        qsort(pairs, n, sizeof(Pair), _compare_pairs)
        return
    for k in range(n):
        keys[k].d2 = pairs[k].d2
        keys[k].index = k
    for k in range(1, n):
        moving = keys[k]
        j = k
        while j > 0 and (moving.d2 < keys[j - 1].d2 or
                         (moving.d2 == keys[j - 1].d2 and pair_before(&pairs[moving.index], &pairs[keys[j - 1].index]))):
            keys[j] = keys[j - 1]
            j -= 1
        keys[j] = moving
    for k in range(n):
        sorted_pairs[k] = pairs[keys[k].index]
    memcpy(pairs, sorted_pairs, n * sizeof(Pair))


# --------------------------------------------------------------------------------------
# Small tensor algebra (NMR conventions of ase_mlnmr.nmr: efg.py, shielding.py)
# --------------------------------------------------------------------------------------
cdef char TRANS = b"T"
cdef char NOTRANS = b"N"
cdef char LEFT = b"L"
cdef char UPPER = b"U"
cdef double INV_SQRT2 = 0.7071067811865476
cdef double INV_SQRT6 = 0.4082482904638631

cdef inline void l2_to_cartesian(const double* s, double* t) noexcept nogil:
    """S = Σ_m s_m B_m (spherical_tensors.L2_BASIS), row-major 3×3."""
    t[0] = -s[2] * INV_SQRT6 + s[4] * INV_SQRT2
    t[4] = -s[2] * INV_SQRT6 - s[4] * INV_SQRT2
    t[8] = 2.0 * s[2] * INV_SQRT6
    t[1] = s[0] * INV_SQRT2
    t[3] = t[1]
    t[5] = s[1] * INV_SQRT2
    t[7] = t[5]
    t[2] = s[3] * INV_SQRT2
    t[6] = t[2]

cdef void symmetric_eigenvalues(const double* t, double* values) noexcept nogil:
    """Eigenvalues (ascending) of a symmetric 3×3 matrix by cyclic Jacobi rotations."""
    cdef double a[9]
    cdef double theta, tau, c, s, apq, app, aqq, akp, akq, off, scale
    cdef int sweep, p, q, k, i, j
    cdef int pairs[6]
    pairs[0] = 0; pairs[1] = 1; pairs[2] = 0; pairs[3] = 2; pairs[4] = 1; pairs[5] = 2
    memcpy(a, t, 9 * sizeof(double))
    scale = 0.0
    for i in range(9):
        scale += a[i] * a[i]
    for sweep in range(60):
        off = a[1] * a[1] + a[2] * a[2] + a[5] * a[5]
        if off <= 1e-36 * scale or off == 0.0:
            break
        for k in range(3):
            p = pairs[2 * k]
            q = pairs[2 * k + 1]
            apq = a[3 * p + q]
            if apq == 0.0:
                continue
            app = a[3 * p + p]
            aqq = a[3 * q + q]
            theta = (aqq - app) / (2.0 * apq)
            if fabs(theta) > 1e150:
                tau = 0.5 / theta
            else:
                tau = (1.0 if theta >= 0 else -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0))
            c = 1.0 / sqrt(tau * tau + 1.0)
            s = tau * c
            for i in range(3):       # A <- A J (columns p, q)
                akp = a[3 * i + p]
                akq = a[3 * i + q]
                a[3 * i + p] = c * akp - s * akq
                a[3 * i + q] = s * akp + c * akq
            for j in range(3):       # A <- Jᵀ A (rows p, q)
                akp = a[3 * p + j]
                akq = a[3 * q + j]
                a[3 * p + j] = c * akp - s * akq
                a[3 * q + j] = s * akp + c * akq
            a[3 * p + q] = 0.0
            a[3 * q + p] = 0.0
    values[0] = a[0]
    values[1] = a[4]
    values[2] = a[8]
    # ascending (insertion sort of three)
    for i in range(1, 3):
        c = values[i]
        j = i - 1
        while j >= 0 and values[j] > c:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = c

cdef void principal_order(const double* ascending, int haeberlen, double* ordered) noexcept nogil:
    """(x, y, z) of orientation.principal_frame: stable sort by |v − mean| of the ascending
    eigenvalues ("efg"); "haeberlen" swaps the first two."""
    cdef double mean = (ascending[0] + ascending[1] + ascending[2]) / 3.0
    cdef int order[3]
    cdef int i, j, tmp
    order[0] = 0; order[1] = 1; order[2] = 2
    for i in range(1, 3):
        tmp = order[i]
        j = i - 1
        while j >= 0 and fabs(ascending[order[j]] - mean) > fabs(ascending[tmp] - mean):
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = tmp
    if haeberlen:
        tmp = order[0]
        order[0] = order[1]
        order[1] = tmp
    for i in range(3):
        ordered[i] = ascending[order[i]]

cdef inline int is_isotropic(const double* v) noexcept nogil:
    """orientation._is_isotropic: |Tzz − Tiso| <= 1e-12 ‖T‖_F (values ordered efg/haeberlen)."""
    cdef double iso = (v[0] + v[1] + v[2]) / 3.0
    return fabs(v[2] - iso) <= 1e-12 * sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])

cdef inline double clip01(double x) noexcept nogil:
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


# --------------------------------------------------------------------------------------
# Kernel step on a block of centres
# --------------------------------------------------------------------------------------
# NumPy's float64 inner loop of np.exp (SIMD where the CPU has it; each element's result
# depends on its value only, not on its place in the array, as determinism needs): the
# Gaussian kernel's exponentials, a row of the kernel block per call. Plain C, no GIL.
ctypedef void (*unary_loop)(char**, cnp.npy_intp*, cnp.npy_intp*, void*) noexcept nogil
cdef unary_loop _EXP_LOOP
cdef void* _EXP_DATA


def _init_exp_loop():
    global _EXP_LOOP, _EXP_DATA
    cdef cnp.ufunc ufunc = np.exp
    index = np.exp.types.index("d->d")
    _EXP_LOOP = <unary_loop>ufunc.functions[index]
    _EXP_DATA = ufunc.data[index]


_init_exp_loop()


cdef inline void exp_in_place(double* values, cnp.npy_intp n) noexcept nogil:
    """values[k] = exp(values[k]) for k < n, by NumPy's loop."""
    cdef char* args[2]
    cdef cnp.npy_intp steps[2]
    args[0] = <char*>values
    args[1] = <char*>values
    steps[0] = sizeof(double)
    steps[1] = sizeof(double)
    _EXP_LOOP(args, &n, steps, _EXP_DATA)


cdef void preprocess_rows(const KernelModel* km, int nb, double* X, double* x2) noexcept nogil:
    """NystromKernelRidge._preprocess row by row: Gaussian ((x/|x| if normalize) − μ)/s;
    dot product (x/s)/|x/s| (zero rows stay zero, x2 = 0)."""
    cdef int r, f, D = km.n_features
    cdef double* row
    cdef double norm
    for r in range(nb):
        row = X + <int64_t>r * D
        if km.dot:
            norm = 0.0
            for f in range(D):
                row[f] = row[f] / km.x_scale[f]
                norm += row[f] * row[f]
            norm = sqrt(norm)
            if norm > 0.0:
                for f in range(D):
                    row[f] = row[f] / norm
                x2[r] = 1.0
            else:
                x2[r] = 0.0
        else:
            if km.normalize:
                norm = 0.0
                for f in range(D):
                    norm += row[f] * row[f]
                norm = sqrt(norm)
                if norm > 0.0:
                    for f in range(D):
                        row[f] = row[f] / norm
            norm = 0.0
            for f in range(D):
                row[f] = (row[f] - km.x_mean[f]) / km.x_scale[f]
                norm += row[f] * row[f]
            x2[r] = norm


cdef inline int padded_rows(int nb) noexcept nogil:
    """nb rounded up to a multiple of GEMM_COLUMNS, at least MIN_ROWS."""
    cdef int rows = (nb + GEMM_COLUMNS - 1) // GEMM_COLUMNS * GEMM_COLUMNS
    return rows if rows > MIN_ROWS else MIN_ROWS


cdef void small_product(const double* A, int64_t a_row, int64_t a_col, const double* B, int64_t b_row,
                        int64_t b_col, int n_i, int n_j, int n_k, double* C, int64_t c_row,
                        int64_t c_col) noexcept nogil:
    """C[i, j] = Σ_k A[i, k] B[k, j] in the order k = 0, 1, …, n_k − 1, for the shapes too small
    for BLAS's blocked GEMM (see GEMM_WIDTH); element (i, j) of X at X[i·x_row + j·x_col]."""
    cdef int i, j, k
    cdef double total, a
    cdef double* c
    cdef const double* b
    if b_col == 1 and c_col == 1:   # rows of B and C contiguous: C[i, :] += A[i, k] B[k, :]
        for i in range(n_i):
            c = C + i * c_row
            for j in range(n_j):
                c[j] = 0.0
            for k in range(n_k):
                a = A[i * a_row + k * a_col]
                b = B + k * b_row
                for j in range(n_j):
                    c[j] += a * b[j]
        return
    for i in range(n_i):
        for j in range(n_j):
            total = 0.0
            for k in range(n_k):
                total += A[i * a_row + k * a_col] * B[k * b_row + j * b_col]
            C[i * c_row + j * c_col] = total


cdef inline void scaled_distances(double* row, double x2, const double* z2, double factor,
                                  int m) noexcept nogil:
    """row[j] ← factor · max(x2 + z2[j] − 2 row[j], 0): the Gaussian's exponent from x·z (on
    local pointers, so that the compiler can vectorise the loop)."""
    cdef int j
    cdef double d
    for j in range(m):
        d = x2 + z2[j] - 2.0 * row[j]
        row[j] = factor * (0.0 if d < 0.0 else d)


cdef void kernel_block(const KernelModel* km, int nb, double* X, float* X32, const double* x2,
                       double* K, double* values) noexcept nogil:
    """K[r][j] = k(x_r, z_j), row-major nb × m: one GEMM over the block, X zero-padded to
    padded_rows(nb) rows (see GEMM_WIDTH: every row's sums are bitwise the same whatever the
    call's row count; m·D ≤ SMALL_SHAPE by ``small_product``, in float64 also in single precision),
    then the kernel function, row by row, followed while the row is in cache by the Nyström
    values (``nystrom_values``) unless ``values`` is NULL.
    Gaussian: k = exp(−(|x|² + |z|² − 2 x·z)₊ / (2l²))."""
    cdef int m = km.m, D = km.n_features, r, j, rows = padded_rows(nb)
    cdef int64_t t, total = <int64_t>rows * m
    cdef double one = 1.0, zero = 0.0, d, factor
    cdef float one32 = 1.0, zero32 = 0.0
    cdef float* K32
    cdef double* row
    memset(X + <int64_t>nb * D, 0, <int64_t>(rows - nb) * D * sizeof(double))
    if <int64_t>m * D <= SMALL_SHAPE_C:     # K[r, j] = Σ_f X[r, f] Z[j, f]
        small_product(X, D, 1, km.inducing, 1, D, rows, m, D, K, m, 1)
    elif km.single:
        for t in range(<int64_t>rows * D):
            X32[t] = <float>X[t]
        K32 = <float*>K  # rows*m floats fit in the rows*m doubles of K
        sgemm(&TRANS, &NOTRANS, &m, &rows, &D, &one32, <float*>km.inducing32, &D, X32, &D, &zero32, K32, &m)
        t = total - 1
        while t >= 0:               # widen in place, from the end
            K[t] = <double>K32[t]
            t -= 1
    else:
        dgemm(&TRANS, &NOTRANS, &m, &rows, &D, &one, <double*>km.inducing, &D, X, &D, &zero, K, &m)
    if km.dot:
        for r in range(nb):
            for j in range(m):
                d = K[<int64_t>r * m + j]
                if d > 1.0:
                    d = 1.0
                elif d < -1.0:
                    d = -1.0
                if km.zeta != 1:
                    d = pow(d, <double>km.zeta)
                if x2[r] < 0.5 and km.inducing_sq[j] < 0.5:
                    d = 1.0
                K[<int64_t>r * m + j] = d
            if values != NULL:
                nystrom_values(km, 1, K + <int64_t>r * m, values + r)
    else:
        factor = -km.inv_two_l2
        for r in range(nb):
            row = K + <int64_t>r * m
            scaled_distances(row, x2[r], km.inducing_sq, factor, m)
            exp_in_place(row, m)
            if values != NULL:
                nystrom_values(km, 1, row, values + r)


cdef inline double fixed_order_dot(const double* a, const double* b, int n) noexcept nogil:
    """Σ_j a_j b_j in an order fixed by n alone: four partial sums over j mod 4, then
    (s0 + s1) + (s2 + s3) (four independent chains, not one add latency per term)."""
    cdef int j, n4 = n - n % 4
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    for j in range(0, n4, 4):
        s0 += a[j] * b[j]
        s1 += a[j + 1] * b[j + 1]
        s2 += a[j + 2] * b[j + 2]
        s3 += a[j + 3] * b[j + 3]
    for j in range(n4, n):
        s0 += a[j] * b[j]
    return (s0 + s1) + (s2 + s3)


cdef void nystrom_values(const KernelModel* km, int nb, const double* K, double* values) noexcept nogil:
    """f(x) = (k_xZ w) y_std + y_mean, summed in a fixed order."""
    cdef int r, m = km.m
    for r in range(nb):
        values[r] = fixed_order_dot(K + <int64_t>r * m, km.weights, m) * km.y_scale + km.y_mean


cdef void nystrom_member_std(const KernelModel* km, int nb, const double* K, double* member_values,
                             double* std) noexcept nogil:
    """Calibrated y_scale · std_k (ddof 1) of the member values k_xZ w_k: the K member weight columns on
    the kernel block in one GEMM of padded_rows(nb) centres (as kernel_block; the padded rows of
    K are zero). ``member_values`` holds padded_rows(nb) × n_members doubles."""
    cdef int r, m = km.m, n = km.n_members, rows = padded_rows(nb)
    cdef double one = 1.0, zero = 0.0
    if <int64_t>n * m <= SMALL_SHAPE_C:     # values[r, k] = Σ_j K[r, j] W[j, k]
        small_product(K, m, 1, km.member_weights, n, 1, nb, n, m, member_values, n, 1)
    else:
        dgemm(&NOTRANS, &NOTRANS, &n, &rows, &m, &one, <double*>km.member_weights, &n, <double*>K, &m, &zero,
              member_values, &n)
    cdef double spread
    for r in range(nb):
        spread = km.y_scale * sample_std(member_values + <int64_t>r * n, n)
        std[r] = calibrated_std(spread, spread, km.calibration, km.cal_power, km.cal_floor)


cdef inline double sample_std(const double* values, int n) noexcept nogil:
    """Standard deviation with ddof 1 of n >= 2 values."""
    cdef int k
    cdef double mean = 0.0, total = 0.0
    for k in range(n):
        mean += values[k]
    mean /= n
    for k in range(n):
        total += (values[k] - mean) * (values[k] - mean)
    return sqrt(total / (n - 1))


cdef inline double calibrated_std(double std, double spread, double a, double b, double c) noexcept nogil:
    """sqrt((a s^(b−1) std)² + c²) for one value's member std and the atom's isotropic
    spread s (``committee.member_spread``): a · std when b = 1 and c = 0."""
    cdef double scaled
    if b == 1.0 and c == 0.0:
        return a * std
    scaled = a * pow(spread, b - 1.0) * std if spread > 0.0 else 0.0
    return sqrt(scaled * scaled + c * c)


cdef double isotropic_spread(const double* members, int n_mu, int n) noexcept nogil:
    """sqrt(mean over μ of the ddof-1 member variance) of members[k][μ] (k < n, μ < n_mu)."""
    cdef int k, mu
    cdef double mean, total = 0.0
    for mu in range(n_mu):
        mean = 0.0
        for k in range(n):
            mean += members[k * n_mu + mu]
        mean /= n
        for k in range(n):
            total += (members[k * n_mu + mu] - mean) * (members[k * n_mu + mu] - mean)
    return sqrt(total / (n_mu * (n - 1)))


cdef void principal_axis(const double* t, double value, double* axis) noexcept nogil:
    """Unit eigenvector of the symmetric 3×3 t for its eigenvalue ``value``: the largest
    cross product of two rows of t − value·1 (zero vector when the eigenvalue is degenerate)."""
    cdef double a[9]
    cdef double c[3]
    cdef double best = 0.0, norm
    cdef int i, p, q
    memcpy(a, t, 9 * sizeof(double))
    a[0] -= value
    a[4] -= value
    a[8] -= value
    axis[0] = axis[1] = axis[2] = 0.0
    for i in range(3):
        p, q = i, (i + 1) % 3
        c[0] = a[3 * p + 1] * a[3 * q + 2] - a[3 * p + 2] * a[3 * q + 1]
        c[1] = a[3 * p + 2] * a[3 * q] - a[3 * p] * a[3 * q + 2]
        c[2] = a[3 * p] * a[3 * q + 1] - a[3 * p + 1] * a[3 * q]
        norm = c[0] * c[0] + c[1] * c[1] + c[2] * c[2]
        if norm > best:
            best = norm
            axis[0], axis[1], axis[2] = c[0], c[1], c[2]
    if best > 0.0:
        norm = sqrt(best)
        axis[0] /= norm
        axis[1] /= norm
        axis[2] /= norm


cdef void lambda_member_std(const SoapSpec* spec, const LambdaModel* lm, const double* coeff, double* scratch,
                            double* members, double* std) noexcept nogil:
    """Member components (members[n_members][n_mu]) and the calibrated std_k (ddof 1) of each component.

    All K members' folded weights W_k (M × M per (l1, l2) pair, as the mean's contraction) in
    two GEMMs per pair, y_kμ = Σ_t C_t G_k[m1_t, m2_t] with G_k = c_{l1}ᵀ W_k c_{l2}:
    T[x][k][r] = Σ_s V[s][k][r] X[s][x] (X the coefficient block of the smaller l, V the
    members' weights stacked by the index contracted first), then G[x][k][y] =
    Σ_r T[x][k][r] Y[r][y] (Y the other block). Fixed shapes per pair: every centre's result
    is the same whatever the others."""
    cdef int a, k, mu, p, n = lm.n_members, n_mu = lm.n_mu
    cdef int m_rows = spec.n_channels * spec.n_max
    cdef int w1, w2, wx, wy, mx, my, kx, kmr
    cdef int64_t t
    cdef double one = 1.0, zero = 0.0, value, spread
    cdef double column[64]
    cdef const double* block
    cdef const double* x_block
    cdef const double* y_block
    cdef const double* weights = lm.member_pair_weights
    cdef double* stage = scratch          # T: [wx][K][M]
    cdef double* gram                     # G: [wx][K][wy]
    memset(members, 0, n * n_mu * sizeof(double))
    if lm.member_two_body != NULL:
        block = coeff + m_rows * lm.lam.lam * lm.lam.lam
        for k in range(n):
            for mu in range(n_mu):
                value = 0.0
                for a in range(m_rows):
                    value += lm.member_two_body[k * m_rows + a] * block[a * n_mu + mu]
                members[k * n_mu + mu] = value
    for p in range(lm.lam.n_pairs):
        w1 = 2 * lm.lam.l1[p] + 1
        w2 = 2 * lm.lam.l2[p] + 1
        if lm.member_swap[p]:
            x_block, wx = coeff + m_rows * lm.lam.l1[p] * lm.lam.l1[p], w1
            y_block, wy = coeff + m_rows * lm.lam.l2[p] * lm.lam.l2[p], w2
        else:
            x_block, wx = coeff + m_rows * lm.lam.l2[p] * lm.lam.l2[p], w2
            y_block, wy = coeff + m_rows * lm.lam.l1[p] * lm.lam.l1[p], w1
        kx = n * wx
        kmr = n * m_rows
        gram = scratch + <int64_t>m_rows * kx
        # column-major views: T (KM × wx) = V (KM × M) X (M × wx; the coefficient block, stored
        # transposed), the long side K·M as the rows (BLAS vectorises along them);
        # Gᵀ (wy × K wx) = Yᵀ (wy × M, Y stored transposed) T' (M × K wx: T seen with leading dimension M)
        dgemm(&NOTRANS, &TRANS, &kmr, &wx, &m_rows, &one, <double*>weights, &kmr, <double*>x_block, &wx,
              &zero, stage, &kmr)
        dgemm(&NOTRANS, &NOTRANS, &wy, &kx, &m_rows, &one, <double*>y_block, &wy, stage, &m_rows, &zero, gram, &wy)
        weights += <int64_t>m_rows * kmr
        for t in range(lm.lam.cg_offsets[p], lm.lam.cg_offsets[p + 1]):
            if lm.member_swap[p]:
                mx, my = lm.lam.cg_m1[t], lm.lam.cg_m2[t]
            else:
                mx, my = lm.lam.cg_m2[t], lm.lam.cg_m1[t]
            mu = lm.lam.cg_mu[t]
            value = lm.lam.cg_value[t]
            for k in range(n):
                members[k * n_mu + mu] += value * gram[(mx * n + k) * wy + my]
    spread = isotropic_spread(members, n_mu, n)
    for mu in range(n_mu):
        for k in range(n):
            column[k] = members[k * n_mu + mu]
        std[mu] = calibrated_std(sample_std(column, n), spread, lm.calibration, lm.cal_power, lm.cal_floor)


cdef void closed_form_eigenvalues(const double* t, double* values) noexcept nogil:
    """Eigenvalues (ascending) of a symmetric 3×3 t in closed form (trigonometric solution of
    the characteristic cubic, O. K. Smith, Commun. ACM 4, 168 (1961)): q = tr t / 3,
    p = sqrt(‖t − q1‖²_F / 6), r = det((t − q1)/p) / 2, φ = acos(r)/3,
    λ = q + 2p cos(φ + 2πj/3). The eigenvalue set apart from a (near-)degenerate pair is
    accurate to rounding; the pair itself to ~1e-8 of p (acos near ±1)."""
    cdef double q = (t[0] + t[4] + t[8]) / 3.0
    cdef double p1 = t[1] * t[1] + t[2] * t[2] + t[5] * t[5]
    cdef double d0 = t[0] - q, d1 = t[4] - q, d2 = t[8] - q
    cdef double p = sqrt((d0 * d0 + d1 * d1 + d2 * d2 + 2.0 * p1) / 6.0)
    cdef double r, phi, largest, smallest
    if p == 0.0:
        values[0] = values[1] = values[2] = q
        return
    r = (d0 * (d1 * d2 - t[5] * t[5]) - t[1] * (t[1] * d2 - t[5] * t[2])
         + t[2] * (t[1] * t[5] - d1 * t[2])) / (2.0 * p * p * p)
    r = -1.0 if r < -1.0 else (1.0 if r > 1.0 else r)
    phi = acos(r) / 3.0
    largest = q + 2.0 * p * cos(phi)
    smallest = q + 2.0 * p * cos(phi + 2.0943951023931957)   # + 2π/3
    values[0] = smallest
    values[1] = 3.0 * q - largest - smallest
    values[2] = largest


cdef void efg_member_stats(const Element* el, const double* mean, const double* members, double* stats) noexcept nogil:
    """stats[0:4]: calibrated std over the members of |Vzz| (a.u.), |CQ| and PQ (MHz) (floor
    c in a.u., times |CQ per a.u.| for |CQ| and PQ), and the Vzz-axis flag (1 when a
    member's Vzz axis is more than 45° from the mean tensor's). The members' eigenvalues in
    closed form (closed_form_eigenvalues: Vzz, never in a degenerate pair, to rounding; the
    mean tensor's by Jacobi rotations): ≈ 0.04 s less than Jacobi sweeps for 14 400 atoms
    with 8 members each (docs/benchmarks.md, committee run 9)."""
    cdef int k, n = el.efg.n_members
    cdef double v[9]
    cdef double values[3]
    cdef double ordered[3]
    cdef double axis[3]
    cdef double mean_axis[3]
    cdef double vzz[64]
    cdef double cq[64]
    cdef double pq[64]
    cdef double eta, cosine, spread, a, b, c
    cdef int flag = 0
    l2_to_cartesian(mean, v)
    symmetric_eigenvalues(v, values)
    principal_order(values, 0, ordered)
    principal_axis(v, ordered[2], mean_axis)
    for k in range(n):
        l2_to_cartesian(members + 5 * k, v)
        closed_form_eigenvalues(v, values)
        principal_order(values, 0, ordered)
        eta = 0.0 if is_isotropic(ordered) else clip01((ordered[0] - ordered[1]) / ordered[2])
        vzz[k] = fabs(ordered[2])
        cq[k] = fabs(el.cq_per_au * ordered[2])
        pq[k] = cq[k] * sqrt(1.0 + eta * eta / 3.0)
        principal_axis(v, ordered[2], axis)
        cosine = fabs(axis[0] * mean_axis[0] + axis[1] * mean_axis[1] + axis[2] * mean_axis[2])
        if not cosine > INV_SQRT2:
            flag = 1
    spread = isotropic_spread(members, 5, n)
    a, b, c = el.efg.calibration, el.efg.cal_power, el.efg.cal_floor
    stats[0] = calibrated_std(sample_std(vzz, n), spread, a, b, c)
    stats[1] = calibrated_std(sample_std(cq, n), spread, a, b, c * fabs(el.cq_per_au))
    stats[2] = calibrated_std(sample_std(pq, n), spread, a, b, c * fabs(el.cq_per_au))
    stats[3] = flag


cdef void linear_values(const KernelModel* km, int nb, const double* X, double* values) noexcept nogil:
    """RidgeRegression.predict: ((x − μ)/s)·w y_scale + y_mean."""
    cdef int r, f, D = km.n_features
    cdef double total
    for r in range(nb):
        total = 0.0
        for f in range(D):
            total += (X[<int64_t>r * D + f] - km.x_mean[f]) / km.x_scale[f] * km.weights[f]
        values[r] = total * km.y_scale + km.y_mean


cdef void nystrom_residuals(const KernelModel* km, int nb, const double* K, double* phi,
                            double* residual) noexcept nogil:
    """r = 1 − |φ|², φ = L_p⁻¹ k_p over the leading p = ood_rank pivots.

    φ by GEMMs over balanced blocks of rows I of L_p⁻¹ (``ood_block`` rows each):
    φ_I = (L_p⁻¹)_{I, 0:I1} k_{0:I1}, I1 the block's last row + 1 (the block's part above the
    diagonal is zero), n (p²/2 + p b/2) multiply-adds in all. A triangular product (TRMM)
    would save the p b/2, but its sums depend on the row's place in the call; these GEMMs'
    do not (see GEMM_WIDTH). ``phi`` holds padded_rows(nb) × p doubles."""
    cdef int m = km.m, p = km.ood_rank, r, rows = padded_rows(nb), start, width, stop
    cdef double one = 1.0, zero = 0.0
    # K row-major nb × m is column-major m × nb with columns k_x; L_p⁻¹ (row-major lower) is
    # column-major upper U = L_p⁻ᵀ, so φ_I = U[0:I1, I]ᵀ k_{0:I1} (column-major p × rows).
    start = 0
    while start < p:
        width = km.ood_block if p - start > km.ood_block else p - start
        stop = start + width
        if <int64_t>width * stop <= SMALL_SHAPE_C:   # φ[r, i] = Σ_j K[r, j] L⁻¹[i, j]
            small_product(K, m, 1, km.chol_inverse + <int64_t>start * p, 1, p, nb, width, stop, phi + start, p, 1)
        else:
            dgemm(&TRANS, &NOTRANS, &width, &rows, &stop, &one, <double*>km.chol_inverse + <int64_t>start * p, &p,
                  <double*>K, &m, &zero, phi + start, &p)
        start = stop
    for r in range(nb):
        residual[r] = clip01(1.0 - fixed_order_dot(phi + <int64_t>r * p, phi + <int64_t>r * p, p))


cdef double ood_score(const KernelModel* km, double residual) noexcept nogil:
    """Fraction of held-out training residuals <= r (the residual itself without reference)."""
    cdef int64_t lo = 0, hi = km.n_reference, mid
    if km.n_reference == 0:
        return residual
    while lo < hi:
        mid = (lo + hi) // 2
        if km.reference[mid] <= residual:
            lo = mid + 1
        else:
            hi = mid
    return <double>lo / <double>km.n_reference


# --------------------------------------------------------------------------------------
# One thread's work: a contiguous range of the centres sorted by element
# --------------------------------------------------------------------------------------
cdef struct Work:
    const EvaluatorData* ev
    const int64_t* order        # centre indices sorted by element
    const int32_t* element_index  # per centre (-1: unknown)
    int64_t start
    int64_t stop
    const int64_t* offsets
    const double* vectors
    const int32_t* numbers
    unsigned want
    double* out
    int status
    int64_t error_position      # position in `order` of the failing centre
    int64_t error_pair


cdef void free_workspace(Workspace* ws) noexcept nogil:
    if ws == NULL:
        return
    free(ws.coeff); free(ws.F_iso); free(ws.F_ood); free(ws.F32); free(ws.K); free(ws.phi); free(ws.small)
    free(ws.member_buffer); free(ws.iso_member_values); free(ws.member_scratch); free(ws.bare_ood)
    free(ws)


cdef Workspace* new_workspace(const EvaluatorData* ev) noexcept nogil:
    """A thread's work buffers for blocks of ev.block_size centres, or NULL (out of memory)."""
    cdef Workspace* ws = <Workspace*>calloc(1, sizeof(Workspace))
    if ws == NULL:
        return NULL
    cdef int B = ev.block_size
    cdef int64_t rows = padded_rows(B)
    ws.coeff = <double*>malloc((ev.max_coeff + ev.max_scratch) * sizeof(double))
    ws.F_iso = <double*>malloc(rows * ev.max_features * sizeof(double))
    ws.F_ood = <double*>malloc(rows * ev.max_features * sizeof(double))
    ws.F32 = <float*>malloc(rows * ev.max_features * sizeof(float))
    ws.K = <double*>malloc(rows * ev.max_inducing * sizeof(double) + 8)
    ws.phi = <double*>malloc(rows * ev.max_ood_rank * sizeof(double) + 8)
    ws.small = <double*>malloc(<int64_t>B * 36 * sizeof(double))
    ws.member_buffer = <double*>malloc(MAX_MEMBERS * 5 * sizeof(double))
    ws.iso_member_values = <double*>malloc(rows * MAX_MEMBERS * sizeof(double))
    ws.member_scratch = <double*>malloc((ev.max_member_scratch + 1) * sizeof(double))
    ws.bare_ood = <int*>malloc(B * sizeof(int))
    if (ws.coeff == NULL or ws.F_iso == NULL or ws.F_ood == NULL or ws.F32 == NULL or ws.K == NULL
            or ws.phi == NULL or ws.small == NULL or ws.member_buffer == NULL or ws.iso_member_values == NULL
            or ws.member_scratch == NULL or ws.bare_ood == NULL):
        free_workspace(ws)
        return NULL
    return ws


cdef Workspace* acquire_workspace(const EvaluatorData* ev) noexcept nogil:
    """A spare workspace of the evaluator's pool, else a new one (NULL: out of memory)."""
    cdef Workspace* ws = NULL
    if ev.pool != NULL:
        pthread_mutex_lock(&_pool_mutex)
        if ev.pool.n_spare > 0:
            ev.pool.n_spare -= 1
            ws = ev.pool.spare[ev.pool.n_spare]
        pthread_mutex_unlock(&_pool_mutex)
    return ws if ws != NULL else new_workspace(ev)


cdef void release_workspace(const EvaluatorData* ev, Workspace* ws) noexcept nogil:
    """Back to the pool, or freed when the pool is full."""
    if ws != NULL and ev.pool != NULL:
        pthread_mutex_lock(&_pool_mutex)
        if ev.pool.n_spare < MAX_SPARE_WORKSPACES:
            ev.pool.spare[ev.pool.n_spare] = ws
            ev.pool.n_spare += 1
            ws = NULL
        pthread_mutex_unlock(&_pool_mutex)
    free_workspace(ws)


cdef int run_work(Work* w) noexcept nogil:
    cdef const EvaluatorData* ev = w.ev
    cdef int64_t max_pairs = 0, i, pos, k, block_start, block_stop, run_stop, n_blocks
    cdef int e, r, nb, x, n_in, status = MLNMR_OK, B = ev.block_size
    for pos in range(w.start, w.stop):
        i = w.order[pos]
        if w.offsets[i + 1] - w.offsets[i] > max_pairs:
            max_pairs = w.offsets[i + 1] - w.offsets[i]
    cdef Pair* pairs = <Pair*>malloc((max_pairs + 1) * sizeof(Pair))
    cdef Pair* sorted_pairs = <Pair*>malloc((max_pairs + 1) * sizeof(Pair))
    cdef PairKey* keys = <PairKey*>malloc((max_pairs + 1) * sizeof(PairKey))
    cdef double* vec = <double*>malloc((3 * max_pairs + 3) * sizeof(double))
    cdef int32_t* channel = <int32_t*>malloc((max_pairs + 1) * sizeof(int32_t))
    cdef int64_t* entry = <int64_t*>malloc((max_pairs + 1) * sizeof(int64_t))
    cdef int64_t rows = padded_rows(B)
    cdef Workspace* ws = acquire_workspace(ev)
    if (pairs == NULL or sorted_pairs == NULL or keys == NULL or vec == NULL or channel == NULL
            or entry == NULL or ws == NULL):
        status = MLNMR_ERR_MEMORY
        w.error_position = w.start
        free(pairs); free(sorted_pairs); free(keys); free(vec); free(channel); free(entry)
        release_workspace(ev, ws)
        w.status = status
        return status
    cdef double* coeff = ws.coeff
    cdef double* F_iso = ws.F_iso
    cdef double* F_ood = ws.F_ood
    cdef float* F32 = ws.F32
    cdef double* K = ws.K
    cdef double* phi = ws.phi
    cdef double* small = ws.small
    cdef double* member_buffer = ws.member_buffer
    cdef double* iso_member_values = ws.iso_member_values
    cdef double* member_scratch = ws.member_scratch
    cdef int* bare_ood = ws.bare_ood
    cdef double* x2 = small              # [B]
    cdef double* iso_values = small + B  # [B]
    cdef double* residual = small + 2 * B
    cdef double* aniso = small + 3 * B   # [B][5]
    cdef double* antisym = small + 8 * B  # [B][3]
    cdef double* efg = small + 11 * B    # [B][5]
    cdef double* iso_std = small + 16 * B  # [B]
    cdef double* aniso_std = small + 17 * B  # [B][5]
    cdef double* efg_std = small + 22 * B  # [B][5]
    cdef double* efg_stats = small + 27 * B  # [B][4]: |Vzz|, |CQ|, PQ std, axis flag
    cdef double* antisym_std = small + 31 * B  # [B][3]
    cdef const Element* el
    cdef const Expansion* xp
    cdef double* row
    cdef double* scratch = coeff + ev.max_coeff
    cdef int64_t n_pairs, err
    cdef double d2, dx, dy, dz
    cdef int32_t z
    cdef int want_ms, want_efg, want_ood, do_iso, do_ood
    block_start = w.start
    while status == MLNMR_OK and block_start < w.stop:
        e = w.element_index[w.order[block_start]]
        # the element's remaining run of centres in equal blocks of at most B (fewer padded
        # GEMM rows than blocks of B and a remainder; outputs do not depend on the blocks)
        run_stop = block_start
        while run_stop < w.stop and w.element_index[w.order[run_stop]] == e:
            run_stop += 1
        n_blocks = (run_stop - block_start + B - 1) // B
        block_stop = block_start + (run_stop - block_start + n_blocks - 1) // n_blocks
        nb = <int>(block_stop - block_start)
        if e < 0:               # unknown element, skip mode: NaN rows (already filled)
            block_start = block_stop
            continue
        el = &ev.elements[e]
        want_ms = (w.want & MLNMR_WANT_SHIELDING) != 0
        want_efg = (w.want & MLNMR_WANT_EFG) != 0 and el.efg.expansion >= 0
        want_ood = (w.want & MLNMR_WANT_OOD) != 0 and el.ood.expansion >= 0
        do_iso = want_ms and el.iso.expansion >= 0
        do_ood = want_ood
        for r in range(nb):
            i = w.order[block_start + r]
            # 1. gather and sort the neighbours inside the element's largest r_cut
            n_pairs = 0
            for k in range(w.offsets[i], w.offsets[i + 1]):
                dx = w.vectors[3 * k]
                dy = w.vectors[3 * k + 1]
                dz = w.vectors[3 * k + 2]
                if not (isfinite(dx) and isfinite(dy) and isfinite(dz)):
                    status = MLNMR_ERR_NONFINITE
                    w.error_pair = k
                    break
                d2 = dx * dx + dy * dy + dz * dz
                if d2 >= el.r_cut2:
                    continue
                pairs[n_pairs].d2 = d2
                pairs[n_pairs].x = dx
                pairs[n_pairs].y = dy
                pairs[n_pairs].z = dz
                pairs[n_pairs].number = w.numbers[k]
                pairs[n_pairs].entry = k
                n_pairs += 1
            if status != MLNMR_OK:
                w.error_position = block_start + r
                break
            sort_pairs(pairs, keys, sorted_pairs, n_pairs)
            bare_ood[r] = 1
            # 2.-4. per expansion: filter, expand, contract / power spectrum
            for x in range(el.n_expansions):
                xp = &el.expansions[x]
                n_in = 0
                for k in range(n_pairs):
                    if pairs[k].d2 >= xp.r_cut2:
                        break       # sorted by d2
                    z = pairs[k].number
                    if z < 0 or z >= 120 or xp.channel_of_z[z] < 0:
                        status = MLNMR_ERR_NEIGHBOUR_ELEMENT
                        w.error_pair = pairs[k].entry
                        break
                    vec[3 * n_in] = pairs[k].x
                    vec[3 * n_in + 1] = pairs[k].y
                    vec[3 * n_in + 2] = pairs[k].z
                    channel[n_in] = xp.channel_of_z[z]
                    entry[n_in] = pairs[k].entry
                    n_in += 1
                if status != MLNMR_OK:
                    break
                err = -1
                status = expand_centre(xp.spec, 0, n_in, vec, channel, coeff, &err)
                if status != MLNMR_OK:
                    w.error_pair = entry[err] if err >= 0 else -1
                    break
                if want_ms and el.aniso.expansion == x:
                    contract_centre(xp.spec, el.aniso.lam, &el.aniso.weights, coeff, scratch, aniso + 5 * r)
                    if el.aniso.n_members:
                        lambda_member_std(xp.spec, &el.aniso, coeff, member_scratch, member_buffer,
                                          aniso_std + 5 * r)
                if want_ms and el.antisym.expansion == x:
                    contract_centre(xp.spec, el.antisym.lam, &el.antisym.weights, coeff, scratch, antisym + 3 * r)
                    if el.antisym.n_members:
                        lambda_member_std(xp.spec, &el.antisym, coeff, member_scratch, member_buffer,
                                          antisym_std + 3 * r)
                if want_efg and el.efg.expansion == x:
                    contract_centre(xp.spec, el.efg.lam, &el.efg.weights, coeff, scratch, efg + 5 * r)
                    if el.efg.n_members:
                        lambda_member_std(xp.spec, &el.efg, coeff, member_scratch, member_buffer, efg_std + 5 * r)
                        efg_member_stats(el, efg + 5 * r, member_buffer, efg_stats + 4 * r)
                if do_iso and el.iso.expansion == x:
                    power_spectrum_from_coefficients(xp.spec, coeff, F_iso + <int64_t>r * el.iso.n_features)
                if do_ood and el.ood.expansion == x:
                    bare_ood[r] = n_in == 0
                    if not (el.ood_shares_iso and do_iso):
                        power_spectrum_from_coefficients(xp.spec, coeff, F_ood + <int64_t>r * el.ood.n_features)
            if status != MLNMR_OK:
                w.error_position = block_start + r
                break
        if status != MLNMR_OK:
            break
        # 4. kernel step
        if do_iso:
            if el.iso.linear:
                linear_values(&el.iso, nb, F_iso, iso_values)
            else:
                preprocess_rows(&el.iso, nb, F_iso, x2)
                kernel_block(&el.iso, nb, F_iso, F32, x2, K, iso_values)
                if el.iso.n_members:
                    nystrom_member_std(&el.iso, nb, K, iso_member_values, iso_std)
                if do_ood and el.ood_shares_iso:
                    nystrom_residuals(&el.ood, nb, K, phi, residual)
        if do_ood and not (el.ood_shares_iso and do_iso):
            preprocess_rows(&el.ood, nb, F_ood, x2)
            kernel_block(&el.ood, nb, F_ood, F32, x2, K, NULL)
            nystrom_residuals(&el.ood, nb, K, phi, residual)
        # 5. assembly
        for r in range(nb):
            i = w.order[block_start + r]
            row = w.out + i * MLNMR_OUT_WIDTH
            if want_ms:
                assemble_shielding(el, do_iso, iso_values[r], aniso + 5 * r, antisym + 3 * r, row)
                if do_iso and el.iso.n_members:
                    row[MLNMR_OUT_MS_ISO_STD] = iso_std[r]
                if el.aniso.n_members:
                    for k in range(5):
                        row[MLNMR_OUT_MS_L2_STD + k] = aniso_std[5 * r + k]
                if el.antisym.n_members:
                    for k in range(3):
                        row[MLNMR_OUT_MS_L1_STD + k] = antisym_std[3 * r + k]
            if want_efg:
                assemble_efg(el, efg + 5 * r, row)
                if el.efg.n_members:
                    for k in range(5):
                        row[MLNMR_OUT_EFG_L2_STD + k] = efg_std[5 * r + k]
                    for k in range(4):
                        row[MLNMR_OUT_VZZ_STD + k] = efg_stats[4 * r + k]
            if want_ood:
                if bare_ood[r]:
                    row[MLNMR_OUT_OOD_RESIDUAL] = 1.0
                    row[MLNMR_OUT_OOD] = 1.0
                else:
                    row[MLNMR_OUT_OOD_RESIDUAL] = residual[r]
                    row[MLNMR_OUT_OOD] = ood_score(&el.ood, residual[r])
        block_start = block_stop
    free(pairs); free(sorted_pairs); free(keys); free(vec); free(channel); free(entry)
    release_workspace(ev, ws)
    w.status = status
    return status


cdef void assemble_shielding(const Element* el, int has_iso, double iso, const double* aniso,
                             const double* antisym, double* row) noexcept nogil:
    cdef double s[9]
    cdef double values[3]
    cdef double ordered[3]
    cdef int k
    cdef int has_aniso = el.aniso.expansion >= 0
    if has_aniso:
        l2_to_cartesian(aniso, s)
        for k in range(5):
            row[MLNMR_OUT_MS_L2 + k] = aniso[k]
        symmetric_eigenvalues(s, values)
        principal_order(values, 1, ordered)
        if is_isotropic(ordered):
            row[MLNMR_OUT_MS_ZETA] = ordered[2] - (ordered[0] + ordered[1] + ordered[2]) / 3.0
            row[MLNMR_OUT_MS_ETA] = 0.0
        else:
            row[MLNMR_OUT_MS_ZETA] = ordered[2] - (ordered[0] + ordered[1] + ordered[2]) / 3.0
            row[MLNMR_OUT_MS_ETA] = clip01((ordered[1] - ordered[0]) / row[MLNMR_OUT_MS_ZETA])
    else:
        memset(s, 0, 9 * sizeof(double))
    if not has_iso:
        return
    row[MLNMR_OUT_MS_ISO] = iso
    if not has_aniso:
        row[MLNMR_OUT_MS_ZETA] = 0.0
        row[MLNMR_OUT_MS_ETA] = 0.0
    if el.has_calibration:
        row[MLNMR_OUT_DELTA_ISO] = -el.cal_slope * (iso - el.cal_ref)
    s[0] += iso
    s[4] += iso
    s[8] += iso
    if el.antisym.expansion >= 0:   # A(v), v = (v_y, v_z, v_x)
        s[5] += antisym[2]
        s[7] -= antisym[2]
        s[6] += antisym[0]
        s[2] -= antisym[0]
        s[1] += antisym[1]
        s[3] -= antisym[1]
    for k in range(9):
        row[MLNMR_OUT_MS + k] = s[k]


cdef void assemble_efg(const Element* el, const double* spherical, double* row) noexcept nogil:
    cdef double v[9]
    cdef double values[3]
    cdef double ordered[3]
    cdef int k
    l2_to_cartesian(spherical, v)
    for k in range(9):
        row[MLNMR_OUT_EFG + k] = v[k]
    for k in range(5):
        row[MLNMR_OUT_EFG_L2 + k] = spherical[k]
    symmetric_eigenvalues(v, values)
    principal_order(values, 0, ordered)
    row[MLNMR_OUT_VZZ] = ordered[2]
    if is_isotropic(ordered):
        row[MLNMR_OUT_ETA_Q] = 0.0
    else:
        row[MLNMR_OUT_ETA_Q] = clip01((ordered[0] - ordered[1]) / ordered[2])
    row[MLNMR_OUT_CQ] = el.cq_per_au * ordered[2]


cdef void* _thread_main(void* arg) noexcept nogil:
    run_work(<Work*>arg)
    return NULL


cdef int evaluate(const EvaluatorData* ev, int64_t n_centres, const int32_t* centre_numbers,
                  const int64_t* offsets, const double* vectors, const int32_t* numbers, unsigned want,
                  int n_threads, double* out, int64_t* error_centre, int64_t* error_pair) noexcept nogil:
    """All outputs of n_centres centres into out[n_centres][MLNMR_OUT_WIDTH] (module doc),
    BLAS held at one thread meanwhile."""
    hold_one_blas_thread()
    cdef int status = evaluate_centres(ev, n_centres, centre_numbers, offsets, vectors, numbers, want,
                                       n_threads, out, error_centre, error_pair)
    release_blas_threads()
    return status


cdef int evaluate_centres(const EvaluatorData* ev, int64_t n_centres, const int32_t* centre_numbers,
                          const int64_t* offsets, const double* vectors, const int32_t* numbers,
                          unsigned want, int n_threads, double* out, int64_t* error_centre,
                          int64_t* error_pair) noexcept nogil:
    """``evaluate`` without the BLAS hold."""
    cdef int64_t i, k, pos
    cdef int e, t, status = MLNMR_OK
    error_centre[0] = -1
    error_pair[0] = -1
    if n_centres < 0 or n_threads < 1 or (n_centres > 0 and offsets[0] != 0):
        return MLNMR_ERR_ARGUMENT
    for i in range(n_centres):
        if offsets[i + 1] < offsets[i]:
            error_centre[0] = i
            return MLNMR_ERR_ARGUMENT
    for i in range(n_centres * MLNMR_OUT_WIDTH):
        out[i] = NAN
    if n_centres == 0:
        return MLNMR_OK
    cdef int32_t* element_index = <int32_t*>malloc(n_centres * sizeof(int32_t))
    cdef int64_t* order = <int64_t*>malloc(n_centres * sizeof(int64_t))
    cdef int64_t* counts = <int64_t*>calloc(ev.n_elements + 2, sizeof(int64_t))
    cdef Work* work = <Work*>calloc(n_threads, sizeof(Work))
    cdef pthread_t* threads = <pthread_t*>calloc(n_threads, sizeof(pthread_t))
    cdef int* started = <int*>calloc(n_threads, sizeof(int))
    if element_index == NULL or order == NULL or counts == NULL or work == NULL or threads == NULL or started == NULL:
        free(element_index); free(order); free(counts); free(work); free(threads); free(started)
        return MLNMR_ERR_MEMORY
    for i in range(n_centres):
        e = -1
        if 0 <= centre_numbers[i] < 120:
            e = ev.element_of_z[centre_numbers[i]]
        if e < 0 and not (want & MLNMR_SKIP_UNKNOWN):
            error_centre[0] = i
            free(element_index); free(order); free(counts); free(work); free(threads); free(started)
            return MLNMR_ERR_ELEMENT
        element_index[i] = e
        counts[e + 2] += 1          # counting sort by element (unknown first)
    for e in range(1, ev.n_elements + 2):
        counts[e] += counts[e - 1]
    # group g = element + 1 (0: unknown) occupies order[counts[g] : counts[g + 1]]
    cdef int64_t* group_start = <int64_t*>malloc((ev.n_elements + 2) * sizeof(int64_t))
    cdef int64_t* thread_order = <int64_t*>malloc(n_centres * sizeof(int64_t))
    if group_start == NULL or thread_order == NULL:
        free(element_index); free(order); free(counts); free(work); free(threads); free(started)
        free(group_start); free(thread_order)
        return MLNMR_ERR_MEMORY
    memcpy(group_start, counts, (ev.n_elements + 2) * sizeof(int64_t))
    for i in range(n_centres):
        order[counts[element_index[i] + 1]] = i
        counts[element_index[i] + 1] += 1
    # each thread takes the t-th slice of every element's centres (balanced cost)
    cdef int64_t begin = 0, a, b
    cdef int g
    for t in range(n_threads):
        work[t].order = thread_order + begin
        for g in range(ev.n_elements + 1):
            a = group_start[g] + (group_start[g + 1] - group_start[g]) * t // n_threads
            b = group_start[g] + (group_start[g + 1] - group_start[g]) * (t + 1) // n_threads
            memcpy(thread_order + begin, order + a, (b - a) * sizeof(int64_t))
            begin += b - a
        work[t].start = 0
        work[t].stop = (thread_order + begin) - work[t].order
    for t in range(n_threads):
        work[t].ev = ev
        work[t].element_index = element_index
        work[t].offsets = offsets
        work[t].vectors = vectors
        work[t].numbers = numbers
        work[t].want = want
        work[t].out = out
        work[t].error_pair = -1
        work[t].error_position = -1
    if n_threads == 1:
        run_work(&work[0])
    else:
        for t in range(1, n_threads):
            started[t] = pthread_create(&threads[t], NULL, _thread_main, &work[t]) == 0
            if not started[t]:
                run_work(&work[t])
        run_work(&work[0])
        for t in range(1, n_threads):
            if started[t]:
                pthread_join(threads[t], NULL)
    for t in range(n_threads):      # the failing centre of lowest index
        if work[t].status != MLNMR_OK and work[t].error_position >= 0:
            if status == MLNMR_OK or work[t].order[work[t].error_position] < error_centre[0]:
                status = work[t].status
                error_centre[0] = work[t].order[work[t].error_position]
                error_pair[0] = work[t].error_pair
    free(element_index); free(order); free(counts); free(work); free(threads); free(started)
    free(group_start); free(thread_order)
    return status


# --------------------------------------------------------------------------------------
# Exported C API (mlnmr_core.h); create/free live in mlnmr_evaluator_bridge.c
# --------------------------------------------------------------------------------------
cdef public int mlnmr_api_version() noexcept nogil:
    return MLNMR_EVALUATOR_API_VERSION

cdef public double mlnmr_evaluator_cutoff(const void* evaluator) noexcept nogil:
    return (<const EvaluatorData*>evaluator).cutoff

cdef public int mlnmr_evaluator_n_elements(const void* evaluator) noexcept nogil:
    return (<const EvaluatorData*>evaluator).n_elements

cdef public int mlnmr_evaluator_element(const void* evaluator, int k) noexcept nogil:
    cdef const EvaluatorData* ev = <const EvaluatorData*>evaluator
    if k < 0 or k >= ev.n_elements:
        return -1
    return ev.elements[k].atomic_number

cdef public unsigned mlnmr_evaluator_element_outputs(const void* evaluator, int atomic_number) noexcept nogil:
    cdef const EvaluatorData* ev = <const EvaluatorData*>evaluator
    if atomic_number < 0 or atomic_number >= 120 or ev.element_of_z[atomic_number] < 0:
        return 0
    return ev.elements[ev.element_of_z[atomic_number]].outputs

cdef public int mlnmr_output_fields(const mlnmr_output_field** fields) noexcept nogil:
    fields[0] = _FIELDS
    return N_OUTPUT_FIELDS

cdef public const char* mlnmr_status_message(int status) noexcept nogil:
    if status < 0 or status >= MLNMR_N_STATUS:
        return _UNKNOWN_STATUS
    return _STATUS_TEXT[status]

cdef public int mlnmr_evaluator_predict(const void* evaluator, int64_t n_centres, const int32_t* centre_numbers,
                                        const int64_t* offsets, const double* vectors,
                                        const int32_t* neighbour_numbers, unsigned want, int n_threads,
                                        double* out, int64_t* error_centre, int64_t* error_pair) noexcept nogil:
    return evaluate(<const EvaluatorData*>evaluator, n_centres, centre_numbers, offsets, vectors,
                    neighbour_numbers, want, n_threads, out, error_centre, error_pair)


# --------------------------------------------------------------------------------------
# Python side: build the C data from an NMRModel
# --------------------------------------------------------------------------------------
cdef const double* _ptr(object array):
    return <const double*>cnp.PyArray_DATA(array)


def _closed_form_eigenvalues(tensor) -> np.ndarray:
    """closed_form_eigenvalues (the committee members' EFG eigenvalues) of one symmetric
    3×3 ``tensor``, ascending; for the tests."""
    cdef double[::1] t = np.ascontiguousarray(tensor, dtype=float).reshape(9)
    cdef double[::1] values = np.empty(3)
    closed_form_eigenvalues(&t[0], &values[0])
    return np.asarray(values)


def _committee_size(regressor) -> int:
    """Members of a regressor's committee (0: none), at most MAX_MEMBERS."""
    size = getattr(regressor, "committee_size", 0)
    if size > MAX_MEMBERS:
        raise ValueError(f"the evaluator takes committees of at most {MAX_MEMBERS} members, got {size}")
    return size


def _expansion_key(descriptor) -> str:
    import json
    parameters = descriptor.get_parameters()
    parameters.pop("lam", None)
    parameters.pop("two_body", None)
    return json.dumps(parameters, sort_keys=True)


cdef class Evaluator:
    """The compiled evaluator of an :class:`~ase_mlnmr.nmr_model.NMRModel`.

    Parameters
    ----------
    model : the loaded model
    isotopes : per element, the isotope CQ refers to (default: the model's, then the usual
        quadrupolar isotope; elements without one get NaN CQ)
    block_size : centres per kernel block (memory ~ block_size · (D + Nx) · 8 bytes per thread,
        kept between calls for up to 8 threads: see ``WorkspacePool``)
    single_precision : float32 kernel blocks (X·Zᵀ in sgemm; σiso then agrees with float64 to
        ~1e-5 relative of the kernel sums, see docs/evaluator.md)
    """
    cdef EvaluatorData data
    cdef list _keep
    cdef readonly list elements
    cdef readonly dict isotopes
    cdef readonly bint single_precision

    def __cinit__(self):
        self.data.elements = NULL
        self.data.pool = <WorkspacePool*>calloc(1, sizeof(WorkspacePool))
        if self.data.pool == NULL:
            raise MemoryError("evaluator: cannot allocate its workspace pool")

    def __dealloc__(self):
        cdef int k
        free(self.data.elements)
        if self.data.pool != NULL:
            for k in range(self.data.pool.n_spare):
                free_workspace(self.data.pool.spare[k])
            free(self.data.pool)

    def __init__(self, model, isotopes=None, int block_size=DEFAULT_BLOCK_SIZE, bint single_precision=False):
        from ..nmr.efg import CQ_MHZ_PER_MB_AU
        from ..nmr.isotopes import quadrupolar_isotope
        from ..descriptors import atomic_number_of

        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self._keep = []
        self.single_precision = single_precision
        self.elements = list(model.elements)
        merged = dict(model.isotopes)
        merged.update(isotopes or {})
        self.isotopes = merged
        n = len(self.elements)
        self.data.api_version = MLNMR_EVALUATOR_API_VERSION
        self.data.n_elements = n
        self.data.elements = <Element*>calloc(max(n, 1), sizeof(Element))
        if self.data.elements == NULL:
            raise MemoryError()
        self.data.block_size = block_size
        for z in range(120):
            self.data.element_of_z[z] = -1
        cdef int e, x, max_features = 1, max_inducing = 1, max_coeff = 1, max_scratch = 1
        cdef double cutoff = 0.0
        cdef Element* el
        for e, symbol in enumerate(self.elements):
            el = &self.data.elements[e]
            el.atomic_number = atomic_number_of(symbol)
            self.data.element_of_z[el.atomic_number] = e
            el.iso.expansion = el.ood.expansion = -1
            el.aniso.expansion = el.antisym.expansion = el.efg.expansion = -1
            keys = []
            props = model.properties_of(symbol)
            for prop in props:
                component = model.models[(symbol, prop)]
                x = self._expansion_index(e, keys, component.descriptor)
                if prop == "ms_iso":
                    self._setup_kernel(&el.iso, x, component.regressor, None)
                    el.outputs |= MLNMR_HAS_MS_ISO
                else:
                    self._setup_lambda(e, prop, x, component)
            if symbol in model.ood_models:
                descriptor, nystrom = model.ood_models[symbol]
                x = self._expansion_index(e, keys, descriptor)
                reference = model.ood_reference.get(symbol)
                rank = model.ood_rank.get(symbol)
                self._setup_kernel(&el.ood, x, nystrom, (reference, rank))
                el.ood_shares_iso = ("ms_iso" in props and model.models[(symbol, "ms_iso")].regressor is nystrom)
                el.outputs |= MLNMR_HAS_OOD
            if symbol in model.calibration:
                el.has_calibration = 1
                el.cal_slope = model.calibration[symbol]["slope"]
                el.cal_ref = model.calibration[symbol]["sigma_ref"]
                if el.iso.expansion >= 0:
                    el.outputs |= MLNMR_HAS_DELTA_ISO
            try:
                isotope = quadrupolar_isotope(symbol, merged)
                el.cq_per_au = CQ_MHZ_PER_MB_AU * isotope.quadrupole_moment_mb
                if el.efg.expansion >= 0:
                    el.outputs |= MLNMR_HAS_CQ
            except (KeyError, ValueError):
                el.cq_per_au = NAN
            el.r_cut2 = 0.0
            for x in range(el.n_expansions):
                el.r_cut2 = max(el.r_cut2, el.expansions[x].r_cut2)
                max_coeff = max(max_coeff, el.expansions[x].n_coeff)
                max_scratch = max(max_scratch, contraction_scratch_size(el.expansions[x].spec))
            cutoff = max(cutoff, sqrt(el.r_cut2))
            if el.iso.expansion >= 0:
                max_features = max(max_features, el.iso.n_features)
                max_inducing = max(max_inducing, el.iso.m)
            if el.ood.expansion >= 0:
                max_features = max(max_features, el.ood.n_features)
                max_inducing = max(max_inducing, el.ood.m)
        self.data.cutoff = cutoff
        self.data.max_features = max_features
        self.data.max_inducing = max_inducing
        cdef int max_ood_rank = 1
        for e in range(n):
            if self.data.elements[e].ood.expansion >= 0:
                max_ood_rank = max(max_ood_rank, self.data.elements[e].ood.ood_rank)
        self.data.max_ood_rank = max_ood_rank
        self.data.max_coeff = max_coeff
        self.data.max_scratch = max_scratch

    def _expansion_index(self, int e, list keys, descriptor) -> int:
        """Index of the element's spherical expansion for ``descriptor`` (shared when equal)."""
        key = _expansion_key(descriptor)
        if key not in keys:
            if len(keys) == MAX_EXPANSIONS:
                raise ValueError(f"more than {MAX_EXPANSIONS} distinct descriptors for one element")
            self._setup_expansion(e, len(keys), descriptor)
            keys.append(key)
        return keys.index(key)

    cdef _setup_expansion(self, int e, int x, descriptor):
        cdef Expansion* xp = &self.data.elements[e].expansions[x]
        core = descriptor._core
        self._keep.append(core)
        xp.spec = <const SoapSpec*><uintptr_t>core.spec_address
        xp.r_cut2 = descriptor.r_cut ** 2
        xp.n_coeff = core.n_coefficients
        for z in range(120):
            xp.channel_of_z[z] = descriptor._species_index[z] if z < len(descriptor._species_index) else -1
        self.data.elements[e].n_expansions = x + 1

    cdef _setup_lambda(self, int e, str prop, int x, component):
        cdef LambdaModel* lm
        if prop == "ms_aniso":
            lm = &self.data.elements[e].aniso
            self.data.elements[e].outputs |= MLNMR_HAS_MS_ANISO
        elif prop == "ms_antisym":
            lm = &self.data.elements[e].antisym
            self.data.elements[e].outputs |= MLNMR_HAS_MS_ANTISYM
        else:
            lm = &self.data.elements[e].efg
            self.data.elements[e].outputs |= MLNMR_HAS_EFG
        descriptor = component.descriptor
        pair_weights, two_body = descriptor.fold_weights(component.regressor.coef_)
        pair_weights = np.ascontiguousarray(pair_weights)
        self._keep.extend([descriptor._lambda_core, pair_weights, two_body])
        lm.expansion = x
        lm.n_mu = 2 * descriptor.lam + 1
        lm.lam = <const LambdaSpec*><uintptr_t>descriptor._lambda_core.spec_address
        lm.weights.pair_weights = _ptr(pair_weights)
        lm.weights.two_body_weights = NULL
        if two_body is not None:
            two_body = np.ascontiguousarray(two_body, dtype=float)
            self._keep.append(two_body)
            lm.weights.two_body_weights = _ptr(two_body)
        lm.n_members = _committee_size(component.regressor)
        if lm.n_members == 0:
            return
        lm.calibration = component.regressor.calibration_
        lm.cal_power = component.regressor.calibration_power_
        lm.cal_floor = component.regressor.calibration_floor_
        folded = [descriptor.fold_weights(coef) for coef in component.regressor.member_coef_]
        pair_weights = np.stack([pairs for pairs, _ in folded], axis=1)   # [pair][K][a][b]
        swap = np.array([2 * l1 + 1 < 2 * l2 + 1 for l1, l2 in descriptor.pairs], dtype=np.int32)
        # column-major V (K M × M): [index contracted first][K][index contracted second], i.e.
        # [b][K][a], or [a][K][b] when c_{l1} goes first
        stacked = np.concatenate([(w.transpose(1, 0, 2) if swapped else w.transpose(2, 0, 1)).ravel()
                                  for w, swapped in zip(pair_weights, swap)])
        self._keep.extend([stacked, swap])
        lm.member_pair_weights = _ptr(stacked)
        lm.member_swap = <const int32_t*>cnp.PyArray_DATA(swap)
        lm.member_two_body = NULL
        if folded[0][1] is not None:
            two_body = np.ascontiguousarray([body for _, body in folded], dtype=float)   # [K][M]
            self._keep.append(two_body)
            lm.member_two_body = _ptr(two_body)
        width = 2 * descriptor.l_max + 1
        rows = pair_weights.shape[2]
        self.data.max_member_scratch = max(self.data.max_member_scratch, lm.n_members * width * (rows + width))

    cdef _setup_kernel(self, KernelModel* km, int x, regressor, ood):
        from ..models.nystrom import NystromKernelRidge
        from scipy.linalg.lapack import dtrtri
        keep = self._keep.append
        km.expansion = x
        if not isinstance(regressor, NystromKernelRidge):   # RidgeRegression on the power spectrum
            if regressor.scaled_weights_.shape[1] != 1:
                raise ValueError("a linear σiso model must have one target")
            arrays = [np.ascontiguousarray(a, dtype=float) for a in
                      (regressor.x_mean_, regressor.x_scale_, regressor.scaled_weights_[:, 0])]
            for a in arrays:
                keep(a)
            km.linear = 1
            km.n_features = arrays[0].shape[0]
            km.x_mean, km.x_scale, km.weights = _ptr(arrays[0]), _ptr(arrays[1]), _ptr(arrays[2])
            km.y_mean = float(np.asarray(regressor.y_mean_).ravel()[0])
            km.y_scale = float(np.asarray(regressor.y_scale_).ravel()[0])
            return
        if regressor.weights_.shape[1] != 1:
            raise ValueError("a Nyström σiso model must have one target")
        inducing = np.ascontiguousarray(regressor.inducing_points_, dtype=float)
        x_mean = np.ascontiguousarray(regressor.x_mean_, dtype=float)
        x_scale = np.ascontiguousarray(regressor.x_scale_, dtype=float)
        weights = np.ascontiguousarray(regressor.weights_[:, 0], dtype=float)
        dot = regressor.kernel == "dot_product"
        z2 = np.einsum("ij,ij->i", inducing, inducing)
        if dot:
            z2 = np.where(z2 == 0.0, 0.0, 1.0)
        inducing32 = np.ascontiguousarray(inducing, dtype=np.float32)
        for a in (inducing, x_mean, x_scale, weights, z2, inducing32):
            keep(a)
        km.linear = 0
        km.dot = dot
        km.zeta = regressor.zeta
        km.normalize = regressor.normalize_features
        km.single = self.single_precision
        km.n_features = inducing.shape[1]
        km.m = inducing.shape[0]
        km.inv_two_l2 = 0.5 / regressor.length_scale ** 2
        km.x_mean, km.x_scale, km.inducing = _ptr(x_mean), _ptr(x_scale), _ptr(inducing)
        km.inducing32 = <const float*>cnp.PyArray_DATA(inducing32)
        km.inducing_sq, km.weights = _ptr(z2), _ptr(weights)
        km.y_mean = float(regressor.y_mean_[0])
        km.y_scale = float(regressor.y_std_[0])
        km.n_members = _committee_size(regressor) if ood is None else 0
        if km.n_members:
            members = np.ascontiguousarray(regressor.member_weights_[:, :, 0].T, dtype=float)  # [m][K]
            keep(members)
            km.member_weights = _ptr(members)
            km.calibration = regressor.calibration_
            km.cal_power = regressor.calibration_power_
            km.cal_floor = regressor.calibration_floor_
        km.ood_rank = km.m
        km.n_reference = 0
        if ood is not None:
            reference, rank = ood
            if rank is not None:
                km.ood_rank = max(1, min(km.m, int(rank)))
            p = km.ood_rank
            with _one_blas_thread():   # LAPACK's sums depend on BLAS's thread count too
                chol_inverse, info = dtrtri(regressor.chol_zz_[:p, :p], lower=1)
            if info != 0:
                raise ValueError(f"the OOD model's Cholesky factor is singular (zero pivot {info} of {p})")
            chol_inverse = np.ascontiguousarray(np.tril(chol_inverse))  # dtrtri leaves the upper part as given
            keep(chol_inverse)
            km.chol_inverse = _ptr(chol_inverse)
            km.ood_block = -(-p // -(-p // OOD_BLOCK_ROWS))
            if reference is not None and len(reference):
                reference = np.ascontiguousarray(np.sort(np.asarray(reference, dtype=float)))
                keep(reference)
                km.reference = _ptr(reference)
                km.n_reference = reference.shape[0]

    # ------------------------------------------------------------------ queries
    @property
    def cutoff(self) -> float:
        """Largest r_cut of every component (Å): build the neighbour list at this."""
        return self.data.cutoff

    @property
    def address(self) -> int:
        """Address of the C evaluator (``mlnmr_evaluator*``), valid while this object lives."""
        return <uintptr_t>&self.data

    def element_outputs(self, element) -> set:
        """Names of the outputs the model has for an element (HAS keys)."""
        from ..descriptors import atomic_number_of
        bits = mlnmr_evaluator_element_outputs(&self.data, atomic_number_of(element))
        return {name for name, bit in HAS.items() if bits & bit}

    def ood_rank(self, element) -> int:
        """Leading pivots the OOD residual of ``element`` uses (0: no OOD model)."""
        from ..descriptors import atomic_number_of
        e = self.data.element_of_z[atomic_number_of(element)]
        return 0 if e < 0 or self.data.elements[e].ood.expansion < 0 else self.data.elements[e].ood.ood_rank

    # ------------------------------------------------------------------ predict
    def predict(self, centre_numbers, offsets, vectors, neighbour_numbers, unsigned want=MLNMR_WANT_ALL,
                bint skip_unknown=False, int n_threads=1):
        """Outputs (n_centres, WIDTH) from CSR neighbours (vectors Å, atomic numbers).

        ValueError / MemoryError name the offending centre and neighbour entry.
        """
        cz = np.ascontiguousarray(centre_numbers, dtype=np.int32)
        off = np.ascontiguousarray(offsets, dtype=np.int64)
        vec = np.ascontiguousarray(vectors, dtype=np.float64).reshape(-1, 3)
        nz = np.ascontiguousarray(neighbour_numbers, dtype=np.int32)
        if cz.ndim != 1 or off.shape != (cz.shape[0] + 1,):
            raise ValueError(f"offsets must have n_centres + 1 = {cz.shape[0] + 1} entries, got {off.shape}")
        if nz.shape != (vec.shape[0],) or off[-1] != vec.shape[0]:
            raise ValueError("vectors, neighbour numbers and offsets[-1] must agree on the number of pairs")
        if n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        out = np.empty((cz.shape[0], MLNMR_OUT_WIDTH))
        cdef int64_t error_centre = -1, error_pair = -1, n = cz.shape[0]
        cdef int status
        cdef unsigned flags = want | (MLNMR_SKIP_UNKNOWN if skip_unknown else 0)
        cdef const int32_t* p_cz = <const int32_t*>cnp.PyArray_DATA(cz)
        cdef const int64_t* p_off = <const int64_t*>cnp.PyArray_DATA(off)
        cdef const double* p_vec = <const double*>cnp.PyArray_DATA(vec)
        cdef const int32_t* p_nz = <const int32_t*>cnp.PyArray_DATA(nz)
        cdef double* p_out = <double*>cnp.PyArray_DATA(out)
        with _one_blas_thread():
            with nogil:
                status = evaluate(&self.data, n, p_cz, p_off, p_vec, p_nz, flags, n_threads, p_out,
                                  &error_centre, &error_pair)
        if status != MLNMR_OK:
            raise_for_status(status, error_centre, error_pair, cz, nz, self.elements)
        return out


_BLAS_CONTROLLER = None
_BLAS_LOCK = threading.Lock()
_BLAS_CALLS = 0        # evaluator calls running now, in any Python thread
_BLAS_LIMITER = None


@contextlib.contextmanager
def _one_blas_thread():
    """Hold BLAS at one thread while evaluator work runs (a multi-threaded GEMM splits its
    work by the call's shape, so a row's sums would depend on the other rows of the call,
    see GEMM_WIDTH; LAPACK's too): the counted hold of ``evaluate``, which works from any
    thread; where OpenBLAS's ``openblas_set_num_threads_local`` is missing, a counted
    threadpoolctl hold instead, which takes effect only when called from the main thread.
    Either way the caller's setting comes back when the last concurrent hold ends."""
    global _BLAS_CONTROLLER, _BLAS_CALLS, _BLAS_LIMITER
    if _blas_threads_local != NULL:    # the counted hold of evaluate(), from any thread
        hold_one_blas_thread()
        try:
            yield
        finally:
            release_blas_threads()
        return
    with _BLAS_LOCK:
        if _BLAS_CALLS == 0:
            if _BLAS_CONTROLLER is None:
                from threadpoolctl import ThreadpoolController

                _BLAS_CONTROLLER = ThreadpoolController()
            _BLAS_LIMITER = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
        _BLAS_CALLS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_CALLS -= 1
            if _BLAS_CALLS == 0:
                _BLAS_LIMITER.restore_original_limits()
                _BLAS_LIMITER = None


def blas_threads_per_call() -> bool:
    """True when every evaluator call holds BLAS at one thread itself (OpenBLAS's
    ``openblas_set_num_threads_local`` found), so calls from any thread are exact."""
    return _blas_threads_local != NULL


def raise_for_status(int status, int64_t error_centre, int64_t error_pair, centre_numbers, neighbour_numbers,
                     elements):
    """Raise the exception of an evaluator status, naming the centre, pair and elements."""
    from ase.data import chemical_symbols  # message only
    message = STATUS_MESSAGES.get(status, f"evaluator status {status}")

    def name(z):
        return chemical_symbols[z] if 0 <= z < len(chemical_symbols) else f"Z={z}"

    if status == MLNMR_ERR_ELEMENT:
        message = (f"no model for element {name(int(centre_numbers[error_centre]))} of centre {error_centre} "
                   f"(model elements: {elements})")
    elif status == MLNMR_ERR_NEIGHBOUR_ELEMENT:
        message = (f"unknown species ['{name(int(neighbour_numbers[error_pair]))}'] within r_cut of centre "
                   f"{error_centre} (neighbour entry {error_pair}): not among the model's neighbour species")
    elif error_centre >= 0:
        message += f" (centre {error_centre}" + (f", neighbour entry {error_pair})" if error_pair >= 0 else ")")
    if status == MLNMR_ERR_MEMORY:
        raise MemoryError(message)
    raise ValueError(message)


# --------------------------------------------------------------------------------------
# Registry of evaluators created through the C API (mlnmr_evaluator_bridge.c)
# --------------------------------------------------------------------------------------
_C_HANDLES: dict = {}


def _create_for_c(path: str) -> int:
    """Load a model file and build its evaluator for a C caller; returns the C address.

    BLAS is held at one thread in the whole process (the caller's threads run the
    evaluator; a C caller has no other way to set it)."""
    from ..nmr_model import NMRModel
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl ships with SciPy's stack
        pass
    model = NMRModel.load(path)
    evaluator = Evaluator(model)
    _C_HANDLES[evaluator.address] = (evaluator, model.ood_threshold)
    return evaluator.address


def _free_for_c(address: int) -> None:
    _C_HANDLES.pop(address, None)


def _query_for_c(address: int, name: str, argument: str) -> float:
    """A value for a C caller (``mlnmr_evaluator_query``): ``ood_threshold`` of the model,
    ``efg_au_in_v_per_a2`` (1 a.u. of EFG in V/Å²), ``cq_per_au`` (CQ in MHz per a.u. of Vzz,
    CQ = e Q Vzz / h, for the isotope ``argument``, e.g. ``"27Al"``)."""
    from ..nmr.efg import CQ_MHZ_PER_MB_AU, EFG_AU_IN_V_PER_A2
    from ..nmr.isotopes import quadrupolar_isotope
    if name == "ood_threshold":
        return _C_HANDLES[address][1]
    if name == "efg_au_in_v_per_a2":
        return EFG_AU_IN_V_PER_A2
    if name == "cq_per_au":
        return CQ_MHZ_PER_MB_AU * quadrupolar_isotope(argument).quadrupole_moment_mb
    raise ValueError(f"unknown query {name!r} (ood_threshold, efg_au_in_v_per_a2, cq_per_au)")


def library_path() -> str:
    """Path of this extension module: the library C callers load (``mlnmr_evaluator_load``)."""
    return os.path.abspath(__file__)
