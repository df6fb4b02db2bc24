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

#include <stddef.h>
#include <stdint.h>

/* Return codes of the kernels; *error_pair receives the offending neighbour entry. */
enum mlnmr_status {
    MLNMR_OK = 0,
    MLNMR_ERR_COINCIDENT = 1, /* a neighbour closer than 1e-4 Å to its centre */
    MLNMR_ERR_NONFINITE = 2,  /* NaN or inf in a displacement vector */
    MLNMR_ERR_SPECIES = 3,    /* neighbour species index outside [0, n_species) */
    MLNMR_ERR_MEMORY = 4,     /* allocation failed */
    MLNMR_ERR_ARGUMENT = 5,   /* inconsistent offsets or arguments */
    MLNMR_ERR_ELEMENT = 6,    /* a centre of an element the model has no model for */
    MLNMR_ERR_NEIGHBOUR_ELEMENT = 7, /* a neighbour element outside the model's neighbour species, within r_cut */
    MLNMR_ERR_PYTHON = 8,     /* evaluator creation failed in Python (see the error text) */
    MLNMR_ERR_VERSION = 9,    /* caller built against another MLNMR_EVALUATOR_API_VERSION */
    MLNMR_N_STATUS = 10
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
    const double *pair_weights;      /* [n_pairs][M][M], M = n_channels * n_max; l1 = l2: upper triangle (b >= a) only */
    const double *two_body_weights;  /* [M] or NULL */
} mlnmr_contraction;

/* ======================================================================================
 * Whole-model evaluator (ase_mlnmr.core._evaluator): one compiled evaluation of a trained
 * NMRModel — σiso (Nyström kernel ridge or linear), σ(2), σ(1), EFG, δiso, CQ, η and the
 * out-of-domain score — shared by NMRModel.predict, the ASE calculator, the CLI and C/C++
 * callers (the LAMMPS fix). docs/evaluator.md describes it in full.
 *
 * Neighbours: CSR over the centres, built at (at least) mlnmr_evaluator_cutoff() Å;
 * neighbours of centre i are entries offsets[i] .. offsets[i+1]-1 of vectors
 * (r_j - r_i, 3 doubles, Å) and numbers (atomic numbers). Periodic images and ghosts
 * look alike; each model component keeps only the pairs inside its own r_cut, sorted
 * canonically (by |r|², x, y, z, Z), so an atom's outputs are bitwise independent of the
 * other centres in the call, their order, the block size, the thread count and the order
 * of its own neighbours.
 *
 * Outputs: out[n_centres][MLNMR_OUT_WIDTH] doubles; NaN where an output does not exist
 * for the centre's element, was not requested, or (MLNMR_SKIP_UNKNOWN) the element has
 * no model. Field offsets below; widths in mlnmr_output_fields().
 * ====================================================================================== */
#define MLNMR_EVALUATOR_API_VERSION 3

enum mlnmr_output_offset {
    MLNMR_OUT_MS = 0,            /* 9: σ = σiso·1 + σ(2) + σ(1), row-major, ppm */
    MLNMR_OUT_MS_ISO = 9,        /* σiso, ppm */
    MLNMR_OUT_DELTA_ISO = 10,    /* δiso = −a(σiso − σref), ppm (calibrated elements) */
    MLNMR_OUT_MS_L2 = 11,        /* 5: σ(2) spherical components (μ = −2..2), ppm */
    MLNMR_OUT_MS_ZETA = 16,      /* Haeberlen reduced anisotropy ζ of σ(2), ppm */
    MLNMR_OUT_MS_ETA = 17,       /* Haeberlen asymmetry η of σ(2) */
    MLNMR_OUT_EFG = 18,          /* 9: V row-major, a.u. (E_h e⁻¹ a0⁻²) */
    MLNMR_OUT_EFG_L2 = 27,       /* 5: V spherical components, a.u. */
    MLNMR_OUT_VZZ = 32,          /* Vzz, |Vzz| >= |Vyy| >= |Vxx|, a.u. */
    MLNMR_OUT_ETA_Q = 33,        /* η = (Vxx − Vyy)/Vzz in [0, 1] */
    MLNMR_OUT_CQ = 34,           /* CQ = eQVzz/h, MHz, the evaluator's isotope */
    MLNMR_OUT_OOD = 35,          /* OOD score in [0, 1]: percentile of the Nyström residual
                                    among held-out training residuals; 1 = bare atom */
    MLNMR_OUT_OOD_RESIDUAL = 36, /* Nyström residual 1 − k K⁻¹ k in [0, 1] */
    /* Committee uncertainty (API 2; σ(1) appended in API 3; NaN for components without a
     * committee): the calibrated standard deviation (ddof 1) over the K members,
     * sqrt((a s^(b-1) std)^2 + c^2) with the model's calibration (a, b, c) and s the atom's
     * isotropic member spread; α × std when the calibration is a single factor α
     * (docs/uncertainty.md). */
    MLNMR_OUT_MS_ISO_STD = 37,   /* σiso, ppm */
    MLNMR_OUT_MS_L2_STD = 38,    /* 5: σ(2) spherical components, ppm */
    MLNMR_OUT_EFG_L2_STD = 43,   /* 5: V spherical components, a.u. */
    MLNMR_OUT_VZZ_STD = 48,      /* |Vzz| of the members, a.u. */
    MLNMR_OUT_CQ_STD = 49,       /* |CQ| of the members, MHz */
    MLNMR_OUT_PQ_STD = 50,       /* PQ = |CQ| (1 + η²/3)^½ of the members, MHz */
    MLNMR_OUT_VZZ_AXIS_FLAG = 51, /* 1: a member's Vzz axis is > 45° from the mean tensor's
                                     (|Vzz| ≈ |Vyy|: η and the sign of CQ unstable), else 0 */
    MLNMR_OUT_MS_L1_STD = 52,    /* 3: σ(1) spherical components (v_y, v_z, v_x), ppm (API 3) */
    MLNMR_OUT_WIDTH = 55
};

/* What to compute (bits of `want`); an EFG-only call does no Nyström work. */
#define MLNMR_WANT_SHIELDING 1u  /* σ, σiso, δiso, σ(2), ζ, η_σ */
#define MLNMR_WANT_EFG 2u        /* V, Vzz, η, CQ */
#define MLNMR_WANT_OOD 4u
#define MLNMR_WANT_ALL 7u
#define MLNMR_SKIP_UNKNOWN 256u  /* centres of elements without a model get NaN, not an error */

/* Outputs an element has (mlnmr_evaluator_element_outputs). */
#define MLNMR_HAS_MS_ISO 1u
#define MLNMR_HAS_MS_ANISO 2u
#define MLNMR_HAS_MS_ANTISYM 4u
#define MLNMR_HAS_EFG 8u
#define MLNMR_HAS_OOD 16u
#define MLNMR_HAS_DELTA_ISO 32u
#define MLNMR_HAS_CQ 64u

typedef struct mlnmr_output_field {
    const char *name;   /* e.g. "ms", "cq" */
    int offset;
    int width;
    const char *unit;   /* "ppm", "au", "MHz", "" */
} mlnmr_output_field;

typedef struct mlnmr_evaluator mlnmr_evaluator;  /* opaque */
struct mlnmr_correlator_functions;               /* defined with the correlator below */

/* The functions of the evaluator API, exported by the extension module
 * ase_mlnmr/core/_evaluator*.so (python -c "import ase_mlnmr.core.evaluator as e;
 * print(e.library_path())"). Callers that do not link libpython (the LAMMPS plugin) load
 * them with mlnmr_evaluator_load() below. */
typedef struct mlnmr_evaluator_functions {
    int (*api_version)(void);
    /* Create from a model file. Starts Python when no interpreter runs (program name from
     * $MLNMR_PYTHON, else the interpreter the package was built with), takes the GIL when
     * one runs; returns with the GIL released. NULL on failure, error text in `error`. */
    mlnmr_evaluator *(*create)(const char *model_path, int api_version, char *error, size_t error_size);
    void (*free)(mlnmr_evaluator *evaluator);
    double (*cutoff)(const mlnmr_evaluator *evaluator);                   /* Å */
    int (*n_elements)(const mlnmr_evaluator *evaluator);
    int (*element)(const mlnmr_evaluator *evaluator, int k);              /* atomic number */
    unsigned (*element_outputs)(const mlnmr_evaluator *evaluator, int atomic_number); /* MLNMR_HAS_* */
    int (*output_fields)(const mlnmr_output_field **fields);               /* returns count */
    /* Predict without Python and without the GIL. Returns a mlnmr_status; on error
     * error_centre/error_pair receive the offending centre and neighbour entry (-1: none). */
    int (*predict)(const mlnmr_evaluator *evaluator, int64_t n_centres, const int32_t *centre_numbers,
                   const int64_t *offsets, const double *vectors, const int32_t *neighbour_numbers,
                   unsigned want, int n_threads, double *out, int64_t *error_centre, int64_t *error_pair);
    const char *(*status_message)(int status);
    /* Python-side values a C caller cannot compute without duplicating the package (takes the
     * GIL; call at set-up, not per step). name: "ood_threshold" (the model's default OOD
     * threshold), "efg_au_in_v_per_a2" (1 a.u. of EFG in V/Å², argument unused), "cq_per_au"
     * (MHz of CQ per a.u. of Vzz for the isotope `argument`, e.g. "27Al"). 0, or -1 with the
     * exception text in `error`. */
    int (*query)(const mlnmr_evaluator *evaluator, const char *name, const char *argument, double *value,
                 char *error, size_t error_size);
    /* The streaming correlator's C entry points (block at the end of this header) for callers
     * that do not link libpython: imports ase_mlnmr.core._correlator (takes the GIL; Python must
     * run, e.g. after create). 0, or -1 with the exception text in `error`. */
    int (*correlator_import)(struct mlnmr_correlator_functions *functions, char *error, size_t error_size);
} mlnmr_evaluator_functions;

#ifdef MLNMR_EVALUATOR_LOADER
/* Loader for C/C++ programs that do not link libpython: define MLNMR_EVALUATOR_LOADER in
 * one source file, link with -ldl. If no Python interpreter is loaded in the process,
 * `libpython` (e.g. ".../libpython3.11.so.1.0") is opened RTLD_GLOBAL first; then the
 * evaluator extension `library` is opened and its functions resolved into `functions`.
 * Returns 0, or -1 with a message in `error`. */
#include <dlfcn.h>
#include <stdio.h>
static int mlnmr_evaluator_load(const char *libpython, const char *library,
                                mlnmr_evaluator_functions *functions, char *error, size_t error_size) {
    void *handle;
    if (dlsym(RTLD_DEFAULT, "Py_IsInitialized") == NULL) {
        if (libpython == NULL || dlopen(libpython, RTLD_NOW | RTLD_GLOBAL) == NULL) {
            snprintf(error, error_size, "cannot load libpython %s: %s", libpython ? libpython : "(none given)",
                     dlerror());
            return -1;
        }
    }
    handle = dlopen(library, RTLD_NOW | RTLD_GLOBAL);
    if (handle == NULL) {
        snprintf(error, error_size, "cannot load the ase_mlnmr evaluator %s: %s", library, dlerror());
        return -1;
    }
#define MLNMR_RESOLVE(field, symbol)                                                           \
    *(void **)(&functions->field) = dlsym(handle, symbol);                                    \
    if (functions->field == NULL) {                                                           \
        snprintf(error, error_size, "%s lacks %s", library, symbol);                          \
        return -1;                                                                            \
    }
    MLNMR_RESOLVE(api_version, "mlnmr_api_version")
    MLNMR_RESOLVE(create, "mlnmr_evaluator_create")
    MLNMR_RESOLVE(free, "mlnmr_evaluator_free")
    MLNMR_RESOLVE(cutoff, "mlnmr_evaluator_cutoff")
    MLNMR_RESOLVE(n_elements, "mlnmr_evaluator_n_elements")
    MLNMR_RESOLVE(element, "mlnmr_evaluator_element")
    MLNMR_RESOLVE(element_outputs, "mlnmr_evaluator_element_outputs")
    MLNMR_RESOLVE(output_fields, "mlnmr_output_fields")
    MLNMR_RESOLVE(predict, "mlnmr_evaluator_predict")
    MLNMR_RESOLVE(status_message, "mlnmr_status_message")
    MLNMR_RESOLVE(query, "mlnmr_evaluator_query")
    MLNMR_RESOLVE(correlator_import, "mlnmr_correlator_import")
#undef MLNMR_RESOLVE
    if (functions->api_version() != MLNMR_EVALUATOR_API_VERSION) {
        snprintf(error, error_size, "evaluator API version %d, this caller was built for %d",
                 functions->api_version(), MLNMR_EVALUATOR_API_VERSION);
        return -1;
    }
    return 0;
}
#endif /* MLNMR_EVALUATOR_LOADER */

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

/* The correlator's cdef-api entry points as function pointers (filled by
 * mlnmr_evaluator_functions.correlator_import for callers without libpython; same
 * signatures as the generated _correlator_api.h). */
typedef struct mlnmr_correlator_functions {
    int (*init)(mlnmr_correlator *corr, const mlnmr_corr_config *cfg);
    void (*free)(mlnmr_correlator *corr);
    int (*add)(mlnmr_correlator *corr, int channel, int64_t step, int64_t n_atoms, const int64_t *ids,
               const int32_t *groups, const double *values, int64_t *error_atom);
    int64_t (*atom_state_size)(const mlnmr_corr_config *cfg);
    int (*pack_atom)(mlnmr_correlator *corr, int64_t atom_id, double *buffer, int remove_atom);
    int (*unpack_atom)(mlnmr_correlator *corr, const double *buffer);
    int (*pack_all)(const mlnmr_correlator *corr, double *buffer);
    int64_t (*global_state_size)(void);
    int (*pack_global)(const mlnmr_corr_config *cfg, double *buffer);
    int (*unpack_global)(const double *buffer, mlnmr_corr_config *cfg);
    int (*reduce)(const mlnmr_corr_config *cfg, int64_t n_atoms, const double *states, int n_blocks,
                  int fluctuation, double *sums, double *counts);
    int64_t (*n_lags)(const mlnmr_corr_config *cfg);
    int (*lags_fs)(const mlnmr_corr_config *cfg, int channel, double *lags_fs);
    int (*normalised)(int n_blocks, int64_t n_lag, const double *sums, const double *counts, double *g);
    int (*plateau)(int64_t n_lag, const double *lags_fs, int n_blocks, const double *sums, const double *counts,
                   double half_span_fs, double window_start_fs, double window_end_fs, double *result);
    int (*write_result)(const char *path, const char *header_json, int n_groups, const char *const *group_names,
                        int n_channels, const char *const *channel_names, int64_t n_lag, const double *lags_fs,
                        const double *g, const double *sums, const double *counts);
} mlnmr_correlator_functions;
#endif /* ASE_MLNMR_CORE_H */
