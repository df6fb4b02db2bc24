/* fix nmr/ml: NMR tensors (EFG, shielding) of the atoms of a group predicted on the fly
 * by an ase_mlnmr model, with their time-correlation functions.  Reference page:
 * docs/lammps_fix.md.  The numerical work happens behind core_bridge.h. */
#ifndef MLNMR_FIX_NMR_ML_H
#define MLNMR_FIX_NMR_ML_H

#include "fix.h"

#include "core_bridge.h"
#include "neighbour_csr.h"

#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class FixNMRML : public Fix {
 public:
  FixNMRML(class LAMMPS *, int, char **);
  ~FixNMRML() override;
  int setmask() override;
  void init() override;
  void init_list(int, class NeighList *) override;
  void setup(int) override;
  void end_of_step() override;
  double compute_vector(int) override;
  double memory_usage() override;
  void post_run() override;

  void grow_arrays(int) override;
  void copy_arrays(int, int, int) override;
  void set_arrays(int) override;
  int pack_exchange(int, double *) override;
  int unpack_exchange(int, double *) override;

  void write_restart(FILE *) override;
  void restart(char *) override;
  int pack_restart(int, double *) override;
  void unpack_restart(int, int) override;
  int size_restart(int) override;
  int maxsize_restart() override;

 private:
  // --- settings (keywords) ---
  MLNMR::BridgeSettings settings;
  std::vector<int> number_by_type;             // atomic number Z, index 1..ntypes
  std::vector<std::string> unique_elements;    // order of first appearance
  int debug_state_width;    // > 0 only for the test-only keyword debug_csr K rc:
  double debug_cutoff;      // then no model is loaded and rc (Angstrom) is the cut-off

  // --- core ---
  std::unique_ptr<MLNMR::CoreBridge> bridge;    // null in debug_csr mode
  double cutoff;    // Angstrom, from the model
  class NeighList *list;
  MLNMR::NeighbourCSR csr;
  std::vector<double> evaluated;    // n_centres x N_EVALUATED_COLUMNS

  // --- per-atom data (migrates with atoms) ---
  int n_output_columns;    // columns of array_atom
  int n_state;             // doubles of per-atom state (running sums, or debug_csr's)
  int n_correlator_state;  // doubles of the correlator's state of one atom (0: no acf)
  double **outputs;        // nmax x n_output_columns, exposed as array_atom
  double **state;          // nmax x n_state, travels in restart files

  // --- global state ---
  bigint last_sample_step;    // -1 before the first sample
  bigint n_samples;          // EFG samples taken
  bigint n_sigma_samples;    // sigma samples taken
  bool elements_checked;
  std::vector<double> global_values;

  void parse_arguments(int narg, char **arg);
  int parse_elements(int narg, char **arg, int iarg);
  int parse_isotopes(int narg, char **arg, int iarg);
  void log_settings();
  std::vector<std::pair<std::string, std::string>> restart_signature() const;
  void sample();
  void check_group_elements();
  void report_evaluation_failure(bigint step, const std::string &message);
  void update_global_values();
  void reduce_correlations();
  void write_debug_columns();
};

}    // namespace LAMMPS_NS

#endif
