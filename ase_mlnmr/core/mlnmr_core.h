/*
 * ase_mlnmr numerical core: C types shared by the Cython kernels and C/C++ callers
 * (the LAMMPS plugin). Include this header, then the generated "_soap_core_api.h",
 * and call import_ase_mlnmr___soap_core() once with the GIL held; the kernels
 * themselves (mlnmr_spherical_expansion, mlnmr_power_spectrum, mlnmr_lambda_features,
 * mlnmr_lambda_contract) run without the GIL and report through their return value.
 *
 * Neighbour input for every kernel, in CSR form: neighbours of centre i are entries
 * offsets[i] .. offsets[i+1]-1 of vectors (r_j - r_i, 3 doubles each, Å) and species
 * (index in [0, n_species)); entries with |r_ij| >= r_cut are skipped.
 */
#ifndef ASE_MLNMR_CORE_H
#define ASE_MLNMR_CORE_H

#include <stdint.h>

/* Return codes of the kernels; *error_pair receives the offending neighbour entry. */
enum mlnmr_status {
    MLNMR_OK = 0,
    MLNMR_ERR_COINCIDENT = 1, /* a neighbour closer than 1e-4 Å to its centre */
    MLNMR_ERR_NONFINITE = 2,  /* NaN or inf in a displacement vector */
    MLNMR_ERR_SPECIES = 3,    /* neighbour species index outside [0, n_species) */
    MLNMR_ERR_MEMORY = 4,     /* allocation failed */
    MLNMR_ERR_ARGUMENT = 5    /* inconsistent offsets */
};

/* Spherical expansion: spherical Bessel radial basis, Gaussian density, real Y_lm. */
typedef struct mlnmr_soap_spec {
    int n_species;          /* neighbour species indices accepted: 0 .. n_species-1 */
    int n_channels;         /* density channels (n_species unless mixed) */
    int n_max;              /* radial functions per l */
    int l_max;
    double r_cut;           /* Å */
    double step;            /* radial table step, Å */
    int n_intervals;        /* radial table intervals */
    const double *radial;   /* [n_intervals][(l_max+1)*n_max][4] cubic pieces of fc(d) I_nl(d) */
    const double *mixing;   /* [n_species][n_channels] species -> channel weights, or NULL */
} mlnmr_soap_spec;

/* lambda-SOAP couplings: sparse real Clebsch-Gordan coefficients per (l1, l2) pair. */
typedef struct mlnmr_lambda_spec {
    int lam;                     /* λ: 2 for EFG and σ(2), 1 for σ(1) */
    int n_pairs;
    const int32_t *l1;           /* [n_pairs] */
    const int32_t *l2;           /* [n_pairs] */
    const int64_t *cg_offsets;   /* [n_pairs + 1] */
    const int32_t *cg_m1;        /* m1 + l1 */
    const int32_t *cg_m2;        /* m2 + l2 */
    const int32_t *cg_mu;        /* μ + λ */
    const double *cg_value;
    int two_body;                /* 1: c_{n λ μ} two-body features come first */
} mlnmr_lambda_spec;

/* Weights of a linear λ-model folded per (l1, l2) pair (LambdaSOAP.fold_weights). */
typedef struct mlnmr_contraction {
    const double *pair_weights;      /* [n_pairs][M][M], M = n_channels * n_max */
    const double *two_body_weights;  /* [M] or NULL */
} mlnmr_contraction;

/* ======================================================================================
 * Streaming time-correlation accumulator (_correlator.pyx; generated "_correlator_api.h",
 * import with import_ase_mlnmr__core___correlator()). One multiple-tau correlator per atom
 * and channel (Ramirez et al., J. Chem. Phys. 133, 154103 (2010), doi:10.1063/1.3491098):
 * level 0 keeps the last p samples and gives lags 0..p-1 exactly; level k >= 1 keeps block
 * averages of m^k samples and gives lags j m^k, j = p/m .. p-1. Every per-atom quantity
 * lives in one flat array of doubles (mlnmr_corr_atom_state_size) that a caller may move
 * between processes or write into restart files. See docs/trajectory.md.
 * ====================================================================================== */
#define MLNMR_CORR_MAX_CHANNELS 8
#define MLNMR_CORR_MAX_DIM 9
#define MLNMR_CORR_STATE_VERSION 1

enum mlnmr_corr_status {
    MLNMR_CORR_OK = 0,
    MLNMR_CORR_ERR_ARGUMENT = 101,       /* invalid configuration or argument */
    MLNMR_CORR_ERR_MEMORY = 102,         /* allocation failed */
    MLNMR_CORR_ERR_CHANNEL = 103,        /* channel index outside [0, n_channels) */
    MLNMR_CORR_ERR_GROUP = 104,          /* group outside [0, n_groups) or changed for an atom */
    MLNMR_CORR_ERR_STEP = 105,           /* an atom's sample step is not its last + interval */
    MLNMR_CORR_ERR_NONFINITE = 106,      /* NaN or inf in the values */
    MLNMR_CORR_ERR_UNKNOWN_ATOM = 107,   /* no state for this atom id */
    MLNMR_CORR_ERR_DUPLICATE_ATOM = 108, /* atom id given twice / already present */
    MLNMR_CORR_ERR_STATE = 109,          /* packed state of another layout or version */
    MLNMR_CORR_ERR_NO_PLATEAU = 110,     /* no lags in the plateau window */
    MLNMR_CORR_ERR_IO = 111              /* result file could not be written */
};

/* What the correlator correlates; identical on every process. */
typedef struct mlnmr_corr_config {
    int n_channels;                             /* 1 .. MLNMR_CORR_MAX_CHANNELS */
    int dim[MLNMR_CORR_MAX_CHANNELS];           /* components per channel: 5 (EFG), 1 (scalar) */
    int64_t interval[MLNMR_CORR_MAX_CHANNELS];  /* MD steps between samples of the channel */
    double dt_fs;                               /* time of one MD step, fs */
    int p;                                      /* level length (lags of level 0), multiple of m */
    int m;                                      /* block-averaging factor between levels, >= 2 */
    int n_levels;                               /* >= 1; largest lag (p-1) m^(n_levels-1) samples */
    int n_groups;                               /* reduction groups (elements) */
    int fluctuation_sums;                       /* 1: keep per-lag sums of x(t0), x(t0+s) */
} mlnmr_corr_config;

/* A correlator owning the states of the atoms present on this process (by atom id).
 * Fields are private; use the functions below. */
typedef struct mlnmr_correlator {
    mlnmr_corr_config config;
    int64_t state_size;      /* doubles per atom */
    int64_t n_atoms;
    int64_t capacity;
    double *states;          /* [capacity][state_size] */
    int64_t *ids;            /* [capacity] atom id of each slot */
    int64_t table_size;      /* power of two; open-addressing id -> slot + 1 (0 = empty) */
    int64_t *table;
} mlnmr_correlator;

/* Layout of the reduced sums written by mlnmr_corr_reduce*:
 * sums[group][channel][block][lag] and counts[...] (lag index 0 .. mlnmr_corr_n_lags-1).
 * Atoms are sorted by id; within a group, the r-th of n atoms goes to block r*n_blocks/n;
 * each block is summed in id order. fluctuation = 1 correlates x - (the atom's own mean). */
#endif /* ASE_MLNMR_CORE_H */
