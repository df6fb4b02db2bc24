#include "core_bridge.h"

namespace MLNMR {

const char *bridge_status_message(int status)
{
  switch (status) {
    case MLNMR_BRIDGE_OK:
      return "success";
    case MLNMR_BRIDGE_NOT_WIRED:
      return "the ase_mlnmr evaluator/correlator is not wired into this build of the "
             "plugin yet";
    default:
      return "unknown status";
  }
}

CoreBridge::CoreBridge(const BridgeSettings &settings) : settings_(settings) {}

double CoreBridge::model_cutoff() const
{
  // PLACEHOLDER: the default descriptor cut-off of ase_mlnmr (Angstrom) until the
  // evaluator's cut-off query replaces it.
  return 5.0;
}

int CoreBridge::correlator_state_doubles_per_atom() const
{
  return 0;
}

int CoreBridge::evaluate(const NeighbourCSR &, unsigned, double *)
{
  return MLNMR_BRIDGE_NOT_WIRED;
}

int CoreBridge::correlate(int64_t, int, const int64_t *, const double *, double *const *, bool)
{
  return MLNMR_BRIDGE_NOT_WIRED;
}

std::vector<double> CoreBridge::global_state() const
{
  return {};
}

int CoreBridge::set_global_state(const double *, int64_t n)
{
  return n == 0 ? MLNMR_BRIDGE_OK : MLNMR_BRIDGE_NOT_WIRED;
}

}    // namespace MLNMR
