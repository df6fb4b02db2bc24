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

#endif /* ASE_MLNMR_CORE_H */
