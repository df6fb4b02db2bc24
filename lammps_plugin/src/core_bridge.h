/* The only door between the LAMMPS fix and the numerical core of ase_mlnmr.
 *
 * Everything numerical happens behind this interface, in the core's C entry points
 * (ase_mlnmr/core/mlnmr_core.h): model evaluation in the compiled evaluator
 * (mlnmr_evaluator_functions: create, cutoff, element_outputs, predict, ...) and time
 * correlation in the streaming correlator (mlnmr_correlator_functions: add, pack/unpack,
 * reduce, plateau, write_result).  The fix only moves data.
 */
#ifndef MLNMR_CORE_BRIDGE_H
#define MLNMR_CORE_BRIDGE_H

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "neighbour_csr.h"

#include <mpi.h>

namespace MLNMR {

/* Thrown by the CoreBridge constructor (model/evaluator/correlator set-up), with the text
 * the fix hands to error->all. */
class BridgeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/* Which outputs an evaluate() call must produce. */
enum OutputRequest : unsigned { REQUEST_EFG = 1u, REQUEST_SIGMA = 2u };

/* Per-atom outputs of one evaluate() call, columns of a row-major (n_centres x N) block;
 * up to COL_OOD_SCORE also the first columns of the fix's per-atom array (docs/lammps_fix.md;
 * the order of the per-atom columns in docs/trajectory.md), the committee ones after the
 * fix's own columns. */
enum EvaluatedColumn {
  COL_SIGMA_ISO = 0,    // ppm
  COL_DELTA_ISO,        // ppm (NaN where the model has no calibration)
  COL_CQ,               // MHz, isotope of the element
  COL_ETA,              // dimensionless
  COL_VZZ,              // EFG units of the fix (a.u. or V/A^2)
  COL_V2M_FIRST,        // 5 spherical components V_2m, m = -2..2 (EFG units of the fix)
  COL_OOD_SCORE = COL_V2M_FIRST + 5,
  // committee (docs/uncertainty.md; NaN where the element's model has no committee):
  COL_SIGMA_ISO_STD,    // calibrated sigma_iso spread, ppm
  COL_CQ_STD,           // calibrated |CQ| spread, MHz, isotope of the element
  COL_VZZ_AXIS_FLAG,    // 1 when a member's Vzz axis is more than 45 degrees from the mean's
  N_EVALUATED_COLUMNS
};

/* Everything the fix's keywords decide, for the evaluator and the correlator. */
struct BridgeSettings {
  std::string model_path;
  std::vector<std::string> element_by_type;    // chemical symbol, index 1..ntypes
  std::vector<int> group_by_type;              // index in `elements` below, index 1..ntypes
  std::vector<std::string> elements;           // distinct elements, order of first appearance
  std::vector<int> element_numbers;            // Z of `elements`
  bool skip_unknown = false;                   // NaN outputs for elements the model lacks
  std::map<std::string, std::string> isotope_by_element;    // e.g. Al -> 27Al
  std::string efg_units = "au";                // "au" or "V/A2"
  double ood_threshold = std::numeric_limits<double>::quiet_NaN();    // NaN: the model's
  int threads = 1;                             // evaluator threads per MPI rank
  int efg_interval = 1;                        // steps between EFG samples (N)
  int every_sigma = 1;                         // steps between sigma_iso samples (M)
  int acf_window = 0;                          // longest lag in samples; 0: no correlation
  int acf_every = 0;                           // steps between correlator reductions/files
  std::string acf_file;                        // result file of the correlator
  double dt_fs = 1.0;                          // MD time step, fs
};

/* Result of the latest correlator reduction (all ranks hold the same copy). */
struct CorrelationSummary {
  std::vector<double> scaling;    // per element: sqrt(P) of G_EFG, NaN if no plateau yet
};

class CoreBridge {
 public:
  /* Loads the evaluator library (and libpython where no interpreter runs), creates the
   * evaluator from the model file, imports the correlator when acf_window > 0.
   * Throws BridgeError with the evaluator's error text (e.g. "ModelFileError: ..."). */
  explicit CoreBridge(const BridgeSettings &settings);
  ~CoreBridge();
  CoreBridge(const CoreBridge &) = delete;
  CoreBridge &operator=(const CoreBridge &) = delete;

  double model_cutoff() const;                   // Angstrom, from the evaluator
  bool element_in_model(int atomic_number) const;    // the model predicts something for Z
  double ood_threshold() const;                  // keyword value, else the model's default
  const char *efg_unit_name() const;             // "a.u." or "V/A^2"

  /* Predict the requested outputs (OutputRequest bits) for every centre of `csr` into
   * `outputs` (n_centres x N_EVALUATED_COLUMNS, row-major).  0, or a non-zero status with
   * `message` naming the offending local centre (index into csr) and neighbour entry. */
  int evaluate(const NeighbourCSR &csr, unsigned request, double *outputs, std::string &message);

  // --- time correlation (acf_window > 0) ---
  bool correlating() const { return correlator_ != nullptr; }
  /* Doubles of one atom's correlator state (0 without correlation). */
  int correlator_state_doubles_per_atom() const;
  /* Feed the outputs of the last evaluate() (its `n` centres, in its order: atom `ids`,
   * element index `groups`) as one sample, in the evaluator's units (EFG in a.u., as the
   * trajectory tool): the EFG channel at sample clock `efg_clock` (steps, a multiple of
   * N), the shift channel (delta_iso where calibrated, else sigma_iso) at `sigma_clock`
   * when `request` has REQUEST_SIGMA.  Atoms without finite values of a channel are left
   * out of it.  0, or a status with `message`. */
  int correlate(unsigned request, int64_t efg_clock, int64_t sigma_clock, int n, const int64_t *ids,
                const int *groups, std::string &message);
  /* Bytes held by this rank's correlator (states, ids, id table). */
  double correlator_bytes() const;
  /* One atom's correlator state into `buffer` (state size doubles); with `remove` the
   * atom leaves this rank.  Returns false if the correlator holds no state for `id`. */
  bool pack_atom(int64_t id, double *buffer, bool remove);
  /* Insert a state packed by pack_atom.  0, or a status with `message`. */
  int unpack_atom(const double *buffer, std::string &message);
  /* Gather every rank's states on rank 0, reduce them in atom-id order, compute G(s) and
   * the plateau per element, write the result file (if any), broadcast the scaling
   * factors.  Collective over `world`; `n_efg_samples` EFG samples taken so far. */
  int reduce_and_write(MPI_Comm world, int64_t n_efg_samples, std::string &message);
  const CorrelationSummary &summary() const { return summary_; }

  /* Correlator configuration as flat doubles, for restart files (checked on reading). */
  std::vector<double> global_state() const;
  int set_global_state(const double *values, int64_t n, std::string &message);

 private:
  struct Core;    // the loaded C APIs and the handles (core_bridge.cpp)
  BridgeSettings settings_;
  std::unique_ptr<Core> core_;
  void *correlator_ = nullptr;    // mlnmr_correlator*, owned by core_
  CorrelationSummary summary_;
  int64_t bad_centre_ = -1, bad_pair_ = -1;

 public:
  /* The offending centre (index into the csr) and neighbour entry of the last failed
   * evaluate() (-1: none). */
  int64_t bad_centre() const { return bad_centre_; }
  int64_t bad_pair() const { return bad_pair_; }
};

}    // namespace MLNMR

#endif
