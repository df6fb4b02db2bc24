# C-level description of the SOAP / lambda-SOAP numerical core.
#
# These structs and the ``cdef api`` functions of _soap_core.pyx are the interface
# shared by the Python wrappers and the LAMMPS plugin (through the generated
# ``_soap_core_api.h``).  Everything is plain data: pointers stay owned by the Python
# objects (SoapCore, LambdaCore, Contraction) that built them.

from libc.stdint cimport int32_t, int64_t

cdef enum MlnmrStatus:
    MLNMR_OK = 0
    MLNMR_ERR_COINCIDENT = 1     # a neighbour closer than MLNMR_MIN_DISTANCE (Å)
    MLNMR_ERR_NONFINITE = 2      # NaN or inf in a displacement vector
    MLNMR_ERR_SPECIES = 3        # neighbour species index outside [0, n_species)
    MLNMR_ERR_MEMORY = 4         # allocation failed
    MLNMR_ERR_ARGUMENT = 5       # inconsistent sizes / offsets

cdef struct SoapSpec:
    int n_species          # neighbour species indices accepted: 0 .. n_species-1
    int n_channels         # density channels (n_species, or fewer/more when mixed)
    int n_max              # radial functions per l
    int l_max
    double r_cut           # Å
    double step            # radial table step, Å
    int n_intervals        # radial table intervals
    const double* radial   # [n_intervals][(l_max+1)*n_max][4] cubic pieces of fc(d) I_nl(d)
    const double* mixing   # [n_species][n_channels] species -> channel weights, or NULL (identity)

cdef struct LambdaSpec:
    int lam                # λ (2 for the EFG and σ(2), 1 for σ(1))
    int n_pairs            # number of (l1, l2) couplings used
    const int32_t* l1      # [n_pairs]
    const int32_t* l2      # [n_pairs]
    const int64_t* cg_offsets  # [n_pairs + 1]: CSR into the sparse coupling terms
    const int32_t* cg_m1   # m1 + l1
    const int32_t* cg_m2   # m2 + l2
    const int32_t* cg_mu   # μ + λ
    const double* cg_value # real coupling coefficient
    int two_body           # 1: add the c_{n λ μ} two-body features (needs λ <= l_max)

cdef struct ContractionSpec:
    const double* pair_weights      # [n_pairs][M][M], M = n_channels * n_max
    const double* two_body_weights  # [M] or NULL
