# C-level description of the SOAP / lambda-SOAP numerical core. The types live in the
# hand-written C header mlnmr_core.h so that C/C++ callers (the LAMMPS plugin) see the
# very same definitions; the kernels are the ``cdef api`` functions of _soap_core.pyx,
# exported through the generated _soap_core_api.h.

from libc.stdint cimport int32_t, int64_t

cdef extern from "mlnmr_core.h":
    cdef enum mlnmr_status:
        MLNMR_OK
        MLNMR_ERR_COINCIDENT
        MLNMR_ERR_NONFINITE
        MLNMR_ERR_SPECIES
        MLNMR_ERR_MEMORY
        MLNMR_ERR_ARGUMENT

    ctypedef struct SoapSpec "mlnmr_soap_spec":
        int n_species
        int n_channels
        int n_max
        int l_max
        double r_cut
        double step
        int n_intervals
        const double* radial
        const double* mixing

    ctypedef struct LambdaSpec "mlnmr_lambda_spec":
        int lam
        int n_pairs
        const int32_t* l1
        const int32_t* l2
        const int64_t* cg_offsets
        const int32_t* cg_m1
        const int32_t* cg_m2
        const int32_t* cg_mu
        const double* cg_value
        int two_body

    ctypedef struct ContractionSpec "mlnmr_contraction":
        const double* pair_weights
        const double* two_body_weights


# Per-centre kernels shared with the whole-model evaluator (_evaluator.pyx).
cdef int expand_centre(const SoapSpec* spec, int64_t start, int64_t stop,
                       const double* vectors, const int32_t* species,
                       double* coefficients, int64_t* error_pair) noexcept nogil
cdef void power_spectrum_from_coefficients(const SoapSpec* spec, const double* coefficients,
                                           double* features) noexcept nogil
cdef void contract_centre(const SoapSpec* spec, const LambdaSpec* lam, const ContractionSpec* weights,
                          const double* coefficients, double* scratch, double* output) noexcept nogil
cdef inline int64_t contraction_scratch_size(const SoapSpec* spec) noexcept nogil:
    """Doubles of contract_centre's scratch: A (M x (2 l_max + 1)) and G ((2 l_max + 1)²)."""
    return (spec.n_channels * spec.n_max + 2 * spec.l_max + 1) * <int64_t>(2 * spec.l_max + 1)
cdef void lambda_features_from_coefficients(const SoapSpec* spec, const LambdaSpec* lam,
                                            const double* coefficients, double* features,
                                            int64_t n_features) noexcept nogil
