/* The only door between the LAMMPS fix and the numerical core of ase_mlnmr.
 *
 * Everything numerical (model evaluation: issue 10's compiled evaluator; time
 * correlation: issue 11's streaming correlator) happens behind this interface, in the
 * core's C entry points; the fix only moves data.  Until those entry points exist the
 * calls return MLNMR_BRIDGE_NOT_WIRED and the fix stops with a clear error when asked
 * to compute.  Wiring them in is a change to core_bridge.cpp only.
 */
#ifndef MLNMR_CORE_BRIDGE_H
#define MLNMR_CORE_BRIDGE_H

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "neighbour_csr.h"

namespace MLNMR {

enum BridgeStatus { MLNMR_BRIDGE_OK = 0, MLNMR_BRIDGE_NOT_WIRED = 1 };

/* Human-readable text for a BridgeStatus. */
const char *bridge_status_message(int status);

/* Which outputs an evaluate() call must produce. */
enum OutputRequest : unsigned { REQUEST_EFG = 1u, REQUEST_SIGMA = 2u };

/* Per-atom outputs of one evaluate() call, columns of a row-major (n_centres x N) block;
 * also the first columns of the fix's per-atom array (docs/lammps_fix.md). */
enum EvaluatedColumn {
  COL_SIGMA_ISO = 0,    // ppm
  COL_DELTA_ISO,        // ppm (NaN where the model has no calibration)
  COL_VZZ,              // EFG units of the fix (a.u. or V/A^2)
  COL_CQ,               // MHz, isotope of the element
  COL_ETA,              // dimensionless
  COL_V2M_FIRST,        // 5 spherical components V_2m, m = -2..2
  COL_OOD_SCORE = COL_V2M_FIRST + 5,
  N_EVALUATED_COLUMNS
};

/* Everything the fix's keywords decide, for the evaluator and the correlator. */
struct BridgeSettings {
  std::string model_path;
  std::vector<std::string> element_by_type;    // chemical symbol, index 1..ntypes
  bool skip_unknown = false;                   // NaN outputs for elements the model lacks
  std::map<std::string, std::string> isotope_by_element;    // e.g. Al -> 27Al
  std::string efg_units = "au";                // "au" or "V/A2"
  double ood_threshold = std::numeric_limits<double>::quiet_NaN();    // NaN: the model's
  int threads = 1;                             // evaluator threads per MPI rank
  int efg_interval = 1;                        // steps between EFG samples (N)
  int every_sigma = 1;                         // steps between sigma_iso samples (M)
  int acf_window = 0;                          // longest lag in samples; 0: no correlation
  std::string acf_file;                        // result file of the correlator
};

class CoreBridge {
 public:
  explicit CoreBridge(const BridgeSettings &settings);

  /* PLACEHOLDER until the evaluator is wired: the model's largest cut-off (Angstrom).
   * The lead connects it to the evaluator's cut-off query. */
  double model_cutoff() const;

  /* Doubles of correlator state per atom; 0 until the correlator is wired. */
  int correlator_state_doubles_per_atom() const;

  /* Predict the requested outputs (OutputRequest bits) for every centre of `csr`
   * into `outputs` (n_centres x N_EVALUATED_COLUMNS, row-major). */
  int evaluate(const NeighbourCSR &csr, unsigned request, double *outputs);

  /* Feed one sample of the evaluated outputs of `n` atoms (ids, rows of `outputs`) to
   * the correlator, whose per-atom state lives in the fix (`atom_state[k]`, one row per
   * atom of the sample).  `new_segment` marks a break in the time series (step jump). */
  int correlate(int64_t step, int n, const int64_t *ids, const double *outputs,
                double *const *atom_state, bool new_segment);

  /* Correlator state that belongs to no atom, as flat doubles, for restart files: the fix
   * writes rank 0's copy and hands every rank the saved copy on restart. */
  std::vector<double> global_state() const;
  int set_global_state(const double *values, int64_t n);

 private:
  BridgeSettings settings_;
};

}    // namespace MLNMR

#endif
