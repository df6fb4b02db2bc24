/* fix nmr/ml: the LAMMPS side of the ase_mlnmr coupling (keywords, neighbour data,
 * per-atom state that migrates and restarts).  No NMR physics here: predictions and
 * time correlation are computed by the ase_mlnmr core behind core_bridge.h. */
#include "fix_nmr_ml.h"

#include "atom.h"
#include "citeme.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "pair.h"
#include "platform.h"
#include "update.h"
#include "utils.h"

#include "element_numbers.h"
#include "lammps_abi.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace LAMMPS_NS;
using namespace FixConst;

namespace {

const char *const citation =
    "fix nmr/ml (ase_mlnmr): machine-learned NMR shielding and EFG tensors\n\n"
    "@Article{Charpentier2025,\n"
    " author = {Charpentier and others},\n"
    " note = {Machine-learned NMR shielding and EFG of oxide glasses (SOAP, kernel ridge)},\n"
    " journal = {Faraday Discuss.},\n"
    " year = 2025,\n"
    " volume = 255,\n"
    " pages = {370--390}\n"
    "}\n\n";

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

// Per-atom running sums for the time averages (state slots when a model is loaded).
enum RunningSum {
  SUM_SIGMA_ISO = 0,    // sum of sigma_iso over sigma samples, ppm
  SUM_SIGMA_COUNT,      // sigma samples with a finite value
  SUM_V2M_FIRST,        // sums of V_2m, 5 slots, EFG units of the fix
  SUM_EFG_COUNT = SUM_V2M_FIRST + 5,
  N_RUNNING_SUMS
};

// Columns of the per-atom array after the evaluated ones up to the OOD score (core_bridge.h).
enum ExtraColumn {
  COL_OOD_FLAG = MLNMR::COL_OOD_SCORE + 1,      // 1 if OOD score > threshold
  COL_MEAN_SIGMA_ISO,                           // running time average, ppm
  COL_MEAN_V2M_FIRST,                           // running time average of V_2m, 5 columns
  COL_SIGMA_ISO_STD = COL_MEAN_V2M_FIRST + 5,   // committee: evaluated sigma_iso spread, ppm
  COL_CQ_STD,                                   // committee: evaluated |CQ| spread, MHz
  COL_VZZ_AXIS_FLAG,                            // committee: Vzz-axis flag
  N_STANDARD_COLUMNS
};

// Test-only columns (keyword debug_csr K), after the standard ones.
enum DebugColumn {
  DEBUG_NEIGHBOUR_COUNT = 0,    // neighbours within the cut-off, this sample
  DEBUG_DISPLACEMENT_SUM,       // sum of r_j - r_i over them, 3 columns
  DEBUG_NUMBER_SUM = DEBUG_DISPLACEMENT_SUM + 3,    // sum of Z_j over them
  DEBUG_OWNER_RANK,
  DEBUG_STATE_FIRST,    // copy of the K per-atom state doubles
};

// Slots of the per-atom debug state (keyword debug_csr K, K >= 4).
enum DebugState {
  STATE_TAG = 0,         // atom ID recorded at the atom's first sample
  STATE_FIRST_RANK,      // rank that owned the atom at its first sample
  STATE_SAMPLES,         // samples taken for this atom
  STATE_NEIGHBOURS,      // neighbour counts summed over samples
  STATE_FILLER_FIRST,    // slot k >= 4 holds atom ID + k
};

constexpr double restart_magic = 20251130.0;

}    // namespace

/* ---------------------------------------------------------------------- */

FixNMRML::FixNMRML(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), debug_state_width(0), debug_cutoff(0.0),
    cutoff(0.0), list(nullptr), n_output_columns(0), n_state(0), n_correlator_state(0),
    outputs(nullptr), state(nullptr), last_sample_step(-1), n_samples(0), n_sigma_samples(0),
    elements_checked(false)
{
  if (lmp->citeme) lmp->citeme->add(citation);

  parse_arguments(narg, arg);

  if (debug_state_width > 0) {    // test-only: no model, the given cut-off
    cutoff = debug_cutoff;
    n_state = debug_state_width;
  } else {
    try {
      bridge = std::make_unique<MLNMR::CoreBridge>(settings);
    } catch (const MLNMR::BridgeError &failure) {
      error->all(FLERR, "Fix nmr/ml {}: {}", id, failure.what());
    }
    cutoff = bridge->model_cutoff();
    n_state = N_RUNNING_SUMS;
    n_correlator_state = bridge->correlator_state_doubles_per_atom();
  }
  n_output_columns = N_STANDARD_COLUMNS;
  if (debug_state_width > 0) n_output_columns += DEBUG_STATE_FIRST + debug_state_width;

  peratom_flag = 1;
  size_peratom_cols = n_output_columns;
  peratom_freq = nevery;
  vector_flag = 1;
  size_vector = 1 + 3 * static_cast<int>(unique_elements.size());
  global_freq = nevery;
  extvector = 0;
  global_values.assign(size_vector, not_a_number);

  restart_global = 1;
  restart_peratom = n_state > 0 ? 1 : 0;
  create_attribute = 1;
  maxexchange = n_output_columns + n_state + 1 + n_correlator_state;

  grow_arrays(atom->nmax);
  atom->add_callback(Atom::GROW);
  if (restart_peratom) atom->add_callback(Atom::RESTART);
  for (int i = 0; i < atom->nlocal; ++i) set_arrays(i);

  log_settings();
}

/* ---------------------------------------------------------------------- */

FixNMRML::~FixNMRML()
{
  atom->delete_callback(id, Atom::GROW);
  if (restart_peratom) atom->delete_callback(id, Atom::RESTART);
  memory->destroy(outputs);
  memory->destroy(state);
}

/* ---------------------------------------------------------------------- */

void FixNMRML::parse_arguments(int narg, char **arg)
{
  if (narg < 7)
    error->all(FLERR,
               "Fix nmr/ml {}: expected 'fix ID group nmr/ml N model_file elements E1 ... "
               "En [keyword value ...]'",
               id);
  nevery = utils::inumeric(FLERR, arg[3], false, lmp);
  if (nevery <= 0) error->all(FLERR, "Fix nmr/ml {}: N must be > 0, got {}", id, arg[3]);
  settings.efg_interval = nevery;
  settings.every_sigma = nevery;

  if (!atom->tag_enable)
    error->all(FLERR, "Fix nmr/ml {} requires atom IDs (atom_modify id no is set)", id);
  const std::string units = update->unit_style;
  if (units != "metal" && units != "real")
    error->all(FLERR, "Fix nmr/ml {} requires units metal or real (distances in Angstrom), "
               "got units {}", id, units);

  settings.model_path = arg[4];
  if (!platform::file_is_readable(settings.model_path))
    error->all(FLERR, "Fix nmr/ml {}: cannot read model file {}", id, settings.model_path);

  if (strcmp(arg[5], "elements") != 0)
    error->all(FLERR, "Fix nmr/ml {}: expected keyword 'elements' after the model file, got {}",
               id, arg[5]);
  int iarg = parse_elements(narg, arg, 6);

  while (iarg < narg) {
    const std::string keyword = arg[iarg];
    auto value = [&]() -> const char * {
      if (iarg + 1 >= narg)
        error->all(FLERR, "Fix nmr/ml {}: keyword {} needs a value", id, keyword);
      return arg[iarg + 1];
    };
    if (keyword == "skip_unknown") {
      settings.skip_unknown = utils::logical(FLERR, value(), false, lmp) == 1;
      iarg += 2;
    } else if (keyword == "every_sigma") {
      settings.every_sigma = utils::inumeric(FLERR, value(), false, lmp);
      if (settings.every_sigma <= 0 || settings.every_sigma % nevery != 0)
        error->all(FLERR, "Fix nmr/ml {}: every_sigma must be a positive multiple of N = {}, "
                   "got {}", id, nevery, settings.every_sigma);
      iarg += 2;
    } else if (keyword == "acf") {
      settings.acf_window = utils::inumeric(FLERR, value(), false, lmp);
      if (settings.acf_window <= 0)
        error->all(FLERR, "Fix nmr/ml {}: acf window must be > 0 samples, got {}", id,
                   settings.acf_window);
      iarg += 2;
    } else if (keyword == "acf_every") {
      settings.acf_every = utils::inumeric(FLERR, value(), false, lmp);
      if (settings.acf_every <= 0 || settings.acf_every % nevery != 0)
        error->all(FLERR, "Fix nmr/ml {}: acf_every must be a positive multiple of N = {}, got {}",
                   id, nevery, settings.acf_every);
      iarg += 2;
    } else if (keyword == "acf_file") {
      settings.acf_file = value();
      iarg += 2;
    } else if (keyword == "ood_threshold") {
      settings.ood_threshold = utils::numeric(FLERR, value(), false, lmp);
      if (!(settings.ood_threshold >= 0.0))
        error->all(FLERR, "Fix nmr/ml {}: ood_threshold must be >= 0, got {}", id, value());
      iarg += 2;
    } else if (keyword == "isotope") {
      iarg = parse_isotopes(narg, arg, iarg + 1);
    } else if (keyword == "threads") {
      settings.threads = utils::inumeric(FLERR, value(), false, lmp);
      if (settings.threads <= 0)
        error->all(FLERR, "Fix nmr/ml {}: threads must be > 0, got {}", id, settings.threads);
      iarg += 2;
    } else if (keyword == "efg_units") {
      settings.efg_units = value();
      if (settings.efg_units != "au" && settings.efg_units != "V/A2")
        error->all(FLERR, "Fix nmr/ml {}: efg_units must be au or V/A2, got {}", id,
                   settings.efg_units);
      iarg += 2;
    } else if (keyword == "debug_csr") {
      debug_state_width = utils::inumeric(FLERR, value(), false, lmp);
      if (debug_state_width < STATE_FILLER_FIRST)
        error->all(FLERR, "Fix nmr/ml {}: debug_csr needs a state width >= {}, got {}", id,
                   static_cast<int>(STATE_FILLER_FIRST), debug_state_width);
      if (iarg + 2 >= narg)
        error->all(FLERR, "Fix nmr/ml {}: debug_csr needs a state width and a cut-off", id);
      debug_cutoff = utils::numeric(FLERR, arg[iarg + 2], false, lmp);
      if (!(debug_cutoff > 0.0))
        error->all(FLERR, "Fix nmr/ml {}: debug_csr cut-off must be > 0, got {}", id,
                   arg[iarg + 2]);
      iarg += 3;
    } else {
      error->all(FLERR, "Fix nmr/ml {}: unknown keyword {}", id, keyword);
    }
  }
  if (!settings.acf_file.empty() && settings.acf_window == 0)
    error->all(FLERR, "Fix nmr/ml {}: acf_file {} given without acf window", id, settings.acf_file);
  if (settings.acf_every > 0 && settings.acf_window == 0)
    error->all(FLERR, "Fix nmr/ml {}: acf_every given without acf window", id);
  if (settings.acf_every == 0) settings.acf_every = 100 * nevery;
  // MD time step in fs (metal: ps, real: fs)
  settings.dt_fs = update->dt * (units == "metal" ? 1000.0 : 1.0);
}

/* ----------------------------------------------------------------------
   "elements E1 ... En": one chemical symbol per atom type, in type order
------------------------------------------------------------------------- */

int FixNMRML::parse_elements(int narg, char **arg, int iarg)
{
  const int ntypes = atom->ntypes;
  settings.element_by_type.assign(ntypes + 1, "");
  number_by_type.assign(ntypes + 1, 0);
  for (int itype = 1; itype <= ntypes; ++itype, ++iarg) {
    if (iarg >= narg)
      error->all(FLERR, "Fix nmr/ml {}: atom type {} has no element (elements lists {} of {} "
                 "types)", id, itype, itype - 1, ntypes);
    const std::string symbol = arg[iarg];
    const int number = MLNMR::atomic_number(symbol);
    if (number == 0)
      error->all(FLERR, "Fix nmr/ml {}: atom type {} has no element: '{}' is not a chemical "
                 "element symbol (elements needs one symbol per type, {} types)", id, itype,
                 symbol, ntypes);
    settings.element_by_type[itype] = symbol;
    number_by_type[itype] = number;
    const auto seen = std::find(unique_elements.begin(), unique_elements.end(), symbol);
    settings.group_by_type.resize(ntypes + 1, -1);
    settings.group_by_type[itype] = static_cast<int>(seen - unique_elements.begin());
    if (seen == unique_elements.end()) {
      unique_elements.push_back(symbol);
      settings.element_numbers.push_back(number);
    }
  }
  settings.elements = unique_elements;
  return iarg;
}

/* ----------------------------------------------------------------------
   "isotope El AEl [El AEl ...]": quadrupolar isotope per element, written as in
   ase_mlnmr (mass number then symbol, e.g. "isotope Al 27Al O 17O")
------------------------------------------------------------------------- */

int FixNMRML::parse_isotopes(int narg, char **arg, int iarg)
{
  const int first = iarg;
  while (iarg + 1 < narg && MLNMR::atomic_number(arg[iarg]) > 0) {
    const std::string element = arg[iarg];
    const std::string isotope = arg[iarg + 1];
    bool listed = false;
    for (const auto &symbol : unique_elements) listed = listed || symbol == element;
    if (!listed)
      error->all(FLERR, "Fix nmr/ml {}: isotope given for {}, which is not in the elements list",
                 id, element);
    const size_t digits = isotope.find_first_not_of("0123456789");
    const bool mass_number_ok = digits != std::string::npos && digits > 0 && digits <= 3 &&
        isotope[0] != '0';
    if (!mass_number_ok || isotope.substr(digits) != element)
      error->all(FLERR, "Fix nmr/ml {}: isotope of {} must be written as mass number and symbol "
                 "(e.g. 27Al), got {}", id, element, isotope);
    settings.isotope_by_element[element] = isotope;
    iarg += 2;
  }
  if (iarg == first)
    error->all(FLERR, "Fix nmr/ml {}: keyword isotope needs pairs 'Element Isotope' (e.g. Al 27Al)",
               id);
  return iarg;
}

/* ---------------------------------------------------------------------- */

void FixNMRML::log_settings()
{
  if (comm->me != 0) return;
  std::string types;
  for (int itype = 1; itype < static_cast<int>(settings.element_by_type.size()); ++itype)
    types += fmt::format(" {}:{}", itype, settings.element_by_type[itype]);
  std::string isotopes;
  for (const auto &entry : settings.isotope_by_element) isotopes += " " + entry.second;
  const std::string correlation = settings.acf_window > 0
      ? fmt::format("correlation window {} samples", settings.acf_window)
      : std::string("time correlation off");
  const std::string threshold = bridge
      ? fmt::format("{}{}", bridge->ood_threshold(),
                    std::isnan(settings.ood_threshold) ? " (model default)" : "")
      : std::string("none (debug_csr)");
  utils::logmesg(lmp,
                 "fix nmr/ml {}: model {}\n"
                 "  types -> elements:{}{}\n"
                 "  cut-off {:.4} Angstrom, EFG every {} steps, sigma_iso every {} steps\n"
                 "  {}{}{}\n"
                 "  OOD threshold {}, evaluator threads per rank {}, EFG units {}\n"
                 "  per-atom data {} doubles ({} bytes per atom)\n"
                 "  correlator state {} doubles ({} bytes per sampled atom)\n",
                 id, settings.model_path, types,
                 settings.skip_unknown ? " (skip_unknown yes)" : "", cutoff, nevery,
                 settings.every_sigma, correlation,
                 settings.acf_file.empty() ? "" : ", file " + settings.acf_file,
                 isotopes.empty() ? "" : ", isotopes" + isotopes, threshold, settings.threads,
                 settings.efg_units, n_output_columns + n_state,
                 (n_output_columns + n_state) * sizeof(double), n_correlator_state,
                 n_correlator_state * sizeof(double));
}

/* ---------------------------------------------------------------------- */

int FixNMRML::setmask()
{
  return END_OF_STEP;
}

/* ---------------------------------------------------------------------- */

void FixNMRML::init()
{
  // the list below is built at cutoff + skin and needs ghosts that far; LAMMPS sets the
  // communication cut-off to max(comm_modify cutoff, largest pair cut-off + skin)
  const double pair_cutoff = force->pair ? force->pair->cutforce : 0.0;
  const double comm_cutoff = std::max(comm->cutghostuser, pair_cutoff + neighbor->skin);
  const double needed = cutoff + neighbor->skin;
  if (comm_cutoff < needed)
    error->all(FLERR, "Fix nmr/ml {}: communication cut-off {:.8} Angstrom is shorter than the "
               "model cut-off {:.8} + neighbor skin {:.8} Angstrom; use comm_modify cutoff "
               "{:.8} (or larger)", id, comm_cutoff, cutoff, neighbor->skin, needed);

  // perpetual FULL list of owned centres (ghosts appear as neighbours; no lists of ghost
  // centres), rebuilt only on reneighbouring
  // rerun calls init() for every snapshot without processing requests in between: one
  // pending request only (duplicates would become extra lists at the next neighbor init)
  if (!neighbor->find_request(this)) neighbor->add_request(this, NeighConst::REQ_FULL)->set_cutoff(cutoff);
}

void FixNMRML::init_list(int, NeighList *ptr)
{
  list = ptr;
}

/* ---------------------------------------------------------------------- */

void FixNMRML::setup(int)
{
  if (update->ntimestep % nevery == 0) sample();
}

void FixNMRML::end_of_step()
{
  sample();
}

/* ----------------------------------------------------------------------
   an element in the group that the model lacks is an error unless skip_unknown yes
------------------------------------------------------------------------- */

void FixNMRML::check_group_elements()
{
  const int ntypes = atom->ntypes;
  std::vector<int> present(ntypes + 1, 0), everywhere(ntypes + 1, 0);
  for (int i = 0; i < atom->nlocal; ++i)
    if (atom->mask[i] & groupbit) present[atom->type[i]] = 1;
  MPI_Allreduce(present.data(), everywhere.data(), ntypes + 1, MPI_INT, MPI_MAX, world);
  for (int itype = 1; itype <= ntypes; ++itype)
    if (everywhere[itype] && !bridge->element_in_model(number_by_type[itype]))
      error->all(FLERR, "Fix nmr/ml {}: atom type {} ({}) is in group {} but model {} has no "
                 "component for {}; use skip_unknown yes to leave its outputs NaN, or a group "
                 "without it", id, itype, settings.element_by_type[itype], group->names[igroup],
                 settings.model_path, settings.element_by_type[itype]);
}

/* ----------------------------------------------------------------------
   one sample at the current step: neighbour data, then evaluation and correlation
------------------------------------------------------------------------- */

void FixNMRML::sample()
{
  const bigint step = update->ntimestep;
  if (step == last_sample_step) return;    // already sampled (setup of a following run)

  MLNMR::build_neighbour_csr(list, atom->x, atom->type, atom->mask, groupbit, number_by_type,
                             cutoff, csr);
  if (debug_state_width > 0) {
    write_debug_columns();
    last_sample_step = step;
    ++n_samples;
    return;
  }
  if (!settings.skip_unknown && !elements_checked) {
    check_group_elements();
    elements_checked = true;
  }
  const bool with_sigma = step % settings.every_sigma == 0;
  unsigned request = MLNMR::REQUEST_EFG;
  if (with_sigma) request |= MLNMR::REQUEST_SIGMA;
  const int n = csr.n_centres();
  evaluated.resize(static_cast<size_t>(std::max(n, 1)) * MLNMR::N_EVALUATED_COLUMNS);
  std::string message;
  if (bridge->evaluate(csr, request, evaluated.data(), message) != 0)
    report_evaluation_failure(step, message);

  const double threshold = bridge->ood_threshold();
  for (int c = 0; c < n; ++c) {
    const int i = csr.centre_local_index[c];
    const double *values = evaluated.data() + static_cast<size_t>(c) * MLNMR::N_EVALUATED_COLUMNS;
    double *row = outputs[i];
    double *sums = state[i];
    // sigma columns keep the last sigma sample between sigma steps
    const int first = with_sigma ? 0 : MLNMR::COL_CQ;
    for (int k = first; k <= MLNMR::COL_OOD_SCORE; ++k) row[k] = values[k];
    if (with_sigma) row[COL_SIGMA_ISO_STD] = values[MLNMR::COL_SIGMA_ISO_STD];
    row[COL_CQ_STD] = values[MLNMR::COL_CQ_STD];
    row[COL_VZZ_AXIS_FLAG] = values[MLNMR::COL_VZZ_AXIS_FLAG];
    const double score = values[MLNMR::COL_OOD_SCORE];
    row[COL_OOD_FLAG] = std::isnan(score) ? not_a_number : (score > threshold ? 1.0 : 0.0);
    if (with_sigma && std::isfinite(values[MLNMR::COL_SIGMA_ISO])) {
      sums[SUM_SIGMA_ISO] += values[MLNMR::COL_SIGMA_ISO];
      sums[SUM_SIGMA_COUNT] += 1.0;
    }
    if (std::isfinite(values[MLNMR::COL_V2M_FIRST])) {
      for (int k = 0; k < 5; ++k) sums[SUM_V2M_FIRST + k] += values[MLNMR::COL_V2M_FIRST + k];
      sums[SUM_EFG_COUNT] += 1.0;
    }
    row[COL_MEAN_SIGMA_ISO] = sums[SUM_SIGMA_COUNT] > 0 ? sums[SUM_SIGMA_ISO] / sums[SUM_SIGMA_COUNT]
                                                        : not_a_number;
    for (int k = 0; k < 5; ++k)
      row[COL_MEAN_V2M_FIRST + k] = sums[SUM_EFG_COUNT] > 0
          ? sums[SUM_V2M_FIRST + k] / sums[SUM_EFG_COUNT] : not_a_number;
  }

  if (bridge->correlating()) {
    std::vector<int64_t> ids(n);
    std::vector<int> groups(n);
    for (int c = 0; c < n; ++c) {
      const int i = csr.centre_local_index[c];
      ids[c] = atom->tag[i];
      groups[c] = settings.group_by_type[atom->type[i]];
    }
    // sample clocks: consecutive samples are N (EFG) and M (shift) steps apart for the
    // correlator, also across a jump of the step counter (docs/lammps_fix.md)
    const int status = bridge->correlate(request, n_samples * nevery, n_sigma_samples * settings.every_sigma,
                                         n, ids.data(), groups.data(), message);
    if (status != 0)
      error->one(FLERR, "Fix nmr/ml {}: time correlation failed at step {}: {}", id, step, message);
  }
  last_sample_step = step;
  ++n_samples;
  if (with_sigma) ++n_sigma_samples;
  update_global_values();
  if (bridge->correlating() && step % settings.acf_every == 0) reduce_correlations();
}

/* the evaluator's status named with the local atom and its neighbour entry */
void FixNMRML::report_evaluation_failure(bigint step, const std::string &message)
{
  const int64_t c = bridge->bad_centre(), p = bridge->bad_pair();
  std::string where;
  if (c >= 0 && c < csr.n_centres()) {
    const int i = csr.centre_local_index[c];
    where = fmt::format(" for atom ID {} (type {}, {}) on rank {}", atom->tag[i], atom->type[i],
                        settings.element_by_type[atom->type[i]], comm->me);
    if (p >= csr.offsets[c] && p < csr.offsets[c + 1]) {
      const double *r = csr.displacements.data() + 3 * p;
      where += fmt::format(", its neighbour {} of {} (Z = {}, r_j - r_i = ({:.6g}, {:.6g}, {:.6g}) "
                           "Angstrom)", p - csr.offsets[c] + 1, csr.offsets[c + 1] - csr.offsets[c],
                           csr.neighbour_numbers[p], r[0], r[1], r[2]);
    }
  }
  error->one(FLERR, "Fix nmr/ml {}: model evaluation failed at step {}{}: {}", id, step, where,
             message);
}

/* ----------------------------------------------------------------------
   thermo values: OOD count, per-element means of delta_iso and |CQ| over the group's
   atoms summed in atom-id order on rank 0 (rank-count independent), scaling factors
------------------------------------------------------------------------- */

void FixNMRML::update_global_values()
{
  const int n_elements = static_cast<int>(unique_elements.size());
  std::vector<double> local;    // id, element, delta_iso, |CQ|, OOD flag
  for (int c = 0; c < csr.n_centres(); ++c) {
    const int i = csr.centre_local_index[c];
    const double *row = outputs[i];
    local.insert(local.end(), {static_cast<double>(atom->tag[i]),
                               static_cast<double>(settings.group_by_type[atom->type[i]]),
                               row[MLNMR::COL_DELTA_ISO], std::fabs(row[MLNMR::COL_CQ]),
                               row[COL_OOD_FLAG]});
  }
  const int n_local = static_cast<int>(local.size());
  std::vector<int> sizes(comm->nprocs), displs(comm->nprocs);
  MPI_Gather(&n_local, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, world);
  std::vector<double> all;
  if (comm->me == 0) {
    int total = 0;
    for (int r = 0; r < comm->nprocs; ++r) {
      displs[r] = total;
      total += sizes[r];
    }
    all.resize(std::max(total, 1));
  }
  MPI_Gatherv(local.data(), n_local, MPI_DOUBLE, all.data(), sizes.data(), displs.data(),
              MPI_DOUBLE, 0, world);
  std::vector<double> values(size_vector, not_a_number);
  if (comm->me == 0) {
    const size_t n_rows = all.size() / 5;
    std::vector<size_t> order(n_rows);
    for (size_t r = 0; r < n_rows; ++r) order[r] = r;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return all[5 * a] < all[5 * b]; });
    std::vector<double> sum(2 * n_elements, 0.0), count(2 * n_elements, 0.0);
    double flagged = 0.0;
    for (const size_t r : order) {
      const double *row = all.data() + 5 * r;
      const int e = static_cast<int>(row[1]);
      for (int q = 0; q < 2; ++q)
        if (std::isfinite(row[2 + q])) {
          sum[2 * e + q] += row[2 + q];
          count[2 * e + q] += 1.0;
        }
      if (row[4] == 1.0) flagged += 1.0;
    }
    values[0] = flagged;
    for (int e = 0; e < n_elements; ++e)
      for (int q = 0; q < 2; ++q)
        values[1 + 3 * e + q] = count[2 * e + q] > 0 ? sum[2 * e + q] / count[2 * e + q] : not_a_number;
  }
  MPI_Bcast(values.data(), size_vector, MPI_DOUBLE, 0, world);
  for (int e = 0; e < n_elements; ++e)
    values[3 + 3 * e] = bridge->correlating() ? bridge->summary().scaling[e] : not_a_number;
  global_values = values;
}

/* correlator states reduced in atom-id order, G(s), plateau, result file */
void FixNMRML::reduce_correlations()
{
  std::string message;
  if (bridge->reduce_and_write(world, n_samples, message) != 0)
    error->all(FLERR, "Fix nmr/ml {}: {}", id, message);
  for (int e = 0; e < static_cast<int>(unique_elements.size()); ++e)
    global_values[3 + 3 * e] = bridge->summary().scaling[e];
}

void FixNMRML::post_run()
{
  if (bridge && bridge->correlating() && n_samples > 0) reduce_correlations();
}

/* ----------------------------------------------------------------------
   test-only (debug_csr): expose the CSR data and exercise the per-atom state
------------------------------------------------------------------------- */

void FixNMRML::write_debug_columns()
{
  const int nlocal = atom->nlocal;
  for (int i = 0; i < nlocal; ++i)
    for (int k = N_STANDARD_COLUMNS; k < n_output_columns; ++k) outputs[i][k] = not_a_number;
  for (int c = 0; c < csr.n_centres(); ++c) {
    const int i = csr.centre_local_index[c];
    double *debug = outputs[i] + N_STANDARD_COLUMNS;
    double sum[3] = {0.0, 0.0, 0.0};
    double number_sum = 0.0;
    for (int64_t p = csr.offsets[c]; p < csr.offsets[c + 1]; ++p) {
      for (int d = 0; d < 3; ++d) sum[d] += csr.displacements[3 * p + d];
      number_sum += csr.neighbour_numbers[p];
    }
    const double count = static_cast<double>(csr.offsets[c + 1] - csr.offsets[c]);
    debug[DEBUG_NEIGHBOUR_COUNT] = count;
    for (int d = 0; d < 3; ++d) debug[DEBUG_DISPLACEMENT_SUM + d] = sum[d];
    debug[DEBUG_NUMBER_SUM] = number_sum;
    debug[DEBUG_OWNER_RANK] = comm->me;

    double *own = state[i];
    if (own[STATE_SAMPLES] == 0.0) {
      own[STATE_TAG] = atom->tag[i];
      own[STATE_FIRST_RANK] = comm->me;
      for (int k = STATE_FILLER_FIRST; k < n_state; ++k) own[k] = atom->tag[i] + k;
    }
    own[STATE_SAMPLES] += 1.0;
    own[STATE_NEIGHBOURS] += count;
    for (int k = 0; k < n_state; ++k) debug[DEBUG_STATE_FIRST + k] = own[k];
  }
}

/* ---------------------------------------------------------------------- */

double FixNMRML::compute_vector(int n)
{
  return global_values[n];
}

double FixNMRML::memory_usage()
{
  double bytes = static_cast<double>(atom->nmax) * (n_output_columns + n_state) * sizeof(double);
  bytes += csr.displacements.capacity() * sizeof(double);
  bytes += (csr.neighbour_numbers.capacity() + csr.centre_numbers.capacity() +
            csr.centre_local_index.capacity()) * sizeof(int);
  bytes += csr.offsets.capacity() * sizeof(int64_t);
  bytes += evaluated.capacity() * sizeof(double);
  if (bridge) bytes += bridge->correlator_bytes();
  return bytes;
}

/* ----------------------------------------------------------------------
   per-atom arrays: outputs and state move with their atom
------------------------------------------------------------------------- */

void FixNMRML::grow_arrays(int nmax)
{
  memory->grow(outputs, nmax, n_output_columns, "nmr/ml:outputs");
  array_atom = outputs;
  if (n_state > 0) memory->grow(state, nmax, n_state, "nmr/ml:state");
}

void FixNMRML::copy_arrays(int i, int j, int)
{
  for (int k = 0; k < n_output_columns; ++k) outputs[j][k] = outputs[i][k];
  for (int k = 0; k < n_state; ++k) state[j][k] = state[i][k];
}

void FixNMRML::set_arrays(int i)
{
  for (int k = 0; k < n_output_columns; ++k) outputs[i][k] = not_a_number;
  for (int k = 0; k < n_state; ++k) state[i][k] = 0.0;
}

int FixNMRML::pack_exchange(int i, double *buf)
{
  int m = 0;
  for (int k = 0; k < n_output_columns; ++k) buf[m++] = outputs[i][k];
  for (int k = 0; k < n_state; ++k) buf[m++] = state[i][k];
  if (n_correlator_state > 0) {    // the correlator's state of this atom leaves with it
    const bool held = bridge->pack_atom(atom->tag[i], buf + m + 1, true);
    buf[m++] = held ? 1.0 : 0.0;
    if (held) m += n_correlator_state;
  }
  return m;
}

int FixNMRML::unpack_exchange(int nlocal, double *buf)
{
  int m = 0;
  for (int k = 0; k < n_output_columns; ++k) outputs[nlocal][k] = buf[m++];
  for (int k = 0; k < n_state; ++k) state[nlocal][k] = buf[m++];
  if (n_correlator_state > 0 && buf[m++] == 1.0) {
    std::string message;
    if (bridge->unpack_atom(buf + m, message) != 0)
      error->one(FLERR, "Fix nmr/ml {}: atom ID {} arrived with a bad state: {}", id,
                 atom->tag[nlocal], message);
    m += n_correlator_state;
  }
  return m;
}

/* ----------------------------------------------------------------------
   restart files: global record = magic, step of the last sample, samples taken, the
   settings that give the saved state its meaning (as text), the correlator's global
   state; then per atom its state
------------------------------------------------------------------------- */

std::vector<std::pair<std::string, std::string>> FixNMRML::restart_signature() const
{
  std::string elements;
  for (int itype = 1; itype < static_cast<int>(settings.element_by_type.size()); ++itype)
    elements += (itype > 1 ? "," : "") + settings.element_by_type[itype];
  std::string isotopes;
  for (const auto &entry : settings.isotope_by_element)
    isotopes += (isotopes.empty() ? "" : ",") + entry.second;
  return {{"model", platform::path_basename(settings.model_path)},
          {"elements", elements},
          {"N", std::to_string(nevery)},
          {"every_sigma", std::to_string(settings.every_sigma)},
          {"acf", std::to_string(settings.acf_window)},
          {"isotope", isotopes},
          {"skip_unknown", settings.skip_unknown ? "yes" : "no"},
          {"efg_units", settings.efg_units},
          {"debug_csr", fmt::format("{} {}", debug_state_width, debug_cutoff)},
          {"state_doubles_per_atom", std::to_string(n_state + n_correlator_state)}};
}

void FixNMRML::write_restart(FILE *fp)
{
  std::string text;
  for (const auto &entry : restart_signature()) text += entry.first + "=" + entry.second + "\n";
  std::vector<double> list = {restart_magic, static_cast<double>(last_sample_step),
                              static_cast<double>(n_samples), static_cast<double>(text.size())};
  for (const char c : text) list.push_back(static_cast<double>(static_cast<unsigned char>(c)));
  const std::vector<double> correlator = bridge ? bridge->global_state() : std::vector<double>();
  list.push_back(static_cast<double>(correlator.size()));
  list.insert(list.end(), correlator.begin(), correlator.end());
  list.push_back(static_cast<double>(n_sigma_samples));
  if (comm->me == 0) {
    const int size = static_cast<int>(list.size() * sizeof(double));
    fwrite(&size, sizeof(int), 1, fp);
    fwrite(list.data(), sizeof(double), list.size(), fp);
  }
}

void FixNMRML::restart(char *buf)
{
  const auto *list = reinterpret_cast<const double *>(buf);
  if (list[0] != restart_magic)
    error->all(FLERR, "Fix nmr/ml {}: the restart file holds no state of this fix version", id);
  const auto n_chars = static_cast<size_t>(list[3]);
  std::string text;
  for (size_t k = 0; k < n_chars; ++k) text.push_back(static_cast<char>(list[4 + k]));

  for (const auto &entry : restart_signature()) {
    const std::string key = entry.first + "=";
    const size_t start = text.find(key);
    std::string saved = "(absent)";
    if (start != std::string::npos) {
      const size_t end = text.find('\n', start);
      saved = text.substr(start + key.size(), end - start - key.size());
    }
    if (saved != entry.second)
      error->all(FLERR, "Fix nmr/ml {}: restart file was written with {} {} but this input "
                 "gives {} {}; the saved per-atom state would be misread (keep the settings "
                 "or use a new fix ID)", id, entry.first, saved, entry.first, entry.second);
  }
  const double *correlator = list + 4 + n_chars;
  const auto n_correlator = static_cast<int64_t>(correlator[0]);
  std::string message = "the restart file holds correlator state but this fix has none";
  const int status = bridge ? bridge->set_global_state(correlator + 1, n_correlator, message)
                            : (n_correlator == 0 ? 0 : 1);
  if (status != 0)
    error->all(FLERR, "Fix nmr/ml {}: cannot restore the correlator state: {}", id, message);
  last_sample_step = static_cast<bigint>(list[1]);
  n_samples = static_cast<bigint>(list[2]);
  n_sigma_samples = static_cast<bigint>(correlator[1 + n_correlator]);
}

int FixNMRML::pack_restart(int i, double *buf)
{
  int m = 1;
  for (int k = 0; k < n_state; ++k) buf[m++] = state[i][k];
  if (n_correlator_state > 0) {    // copy (the atom stays here)
    const bool held = bridge->pack_atom(atom->tag[i], buf + m + 1, false);
    buf[m++] = held ? 1.0 : 0.0;
    if (!held) std::fill(buf + m, buf + m + n_correlator_state, 0.0);
    m += n_correlator_state;
  }
  buf[0] = m;
  return m;
}

void FixNMRML::unpack_restart(int nlocal, int nth)
{
  double **extra = atom->extra;
  int m = 0;
  for (int i = 0; i < nth; ++i) m += static_cast<int>(extra[nlocal][m]);
  const int count = static_cast<int>(extra[nlocal][m++]) - 1;
  const int expected = n_state + (n_correlator_state > 0 ? 1 + n_correlator_state : 0);
  if (count != expected)
    error->one(FLERR, "Fix nmr/ml {}: restart file holds {} state doubles per atom, expected {}",
               id, count, expected);
  for (int k = 0; k < n_state; ++k) state[nlocal][k] = extra[nlocal][m++];
  if (n_correlator_state > 0 && extra[nlocal][m++] == 1.0) {
    std::string message;
    if (bridge->unpack_atom(&extra[nlocal][m], message) != 0)
      error->one(FLERR, "Fix nmr/ml {}: atom ID {} has a bad state in the restart file: {}", id,
                 atom->tag[nlocal], message);
  }
}

int FixNMRML::size_restart(int)
{
  return maxsize_restart();
}

int FixNMRML::maxsize_restart()
{
  return 1 + n_state + (n_correlator_state > 0 ? 1 + n_correlator_state : 0);
}
