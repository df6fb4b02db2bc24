/* The door to the ase_mlnmr core: the compiled evaluator and the streaming correlator,
 * reached through their C APIs (ase_mlnmr/core/mlnmr_core.h).  This file holds no model
 * evaluation and no correlation arithmetic; it loads the APIs, converts layouts and units
 * between the fix and the core, and moves correlator states between MPI ranks. */
#define MLNMR_EVALUATOR_LOADER
#include "core_bridge.h"

#include "mlnmr_core.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#ifndef MLNMR_LIBPYTHON_DEFAULT
#define MLNMR_LIBPYTHON_DEFAULT ""
#endif

namespace MLNMR {

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr int correlator_p = 16;        // multiple-tau level length (as ase-mlnmr trajectory)
constexpr int correlator_m = 2;         // block-averaging factor
constexpr int correlator_blocks = 8;    // atom blocks of the plateau uncertainty
const char *const channel_names[2] = {"efg", "shift"};

/* Path of a file next to this plugin: ../core/_evaluator*.so seen from
 * ase_mlnmr/lammps_plugin/nmrmlplugin.so (the installed layout). */
std::string sibling_evaluator_library()
{
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&sibling_evaluator_library), &info) == 0 || !info.dli_fname)
    return "";
  std::string folder(info.dli_fname);
  folder = folder.substr(0, folder.find_last_of('/'));
  folder = folder.substr(0, folder.find_last_of('/')) + "/core/";
  // the extension's name carries Python's EXT_SUFFIX: try the usual CPython ones
  for (const char *suffix : {".cpython-313-x86_64-linux-gnu.so", ".cpython-312-x86_64-linux-gnu.so",
                             ".cpython-311-x86_64-linux-gnu.so", ".cpython-310-x86_64-linux-gnu.so",
                             ".abi3.so", ".so"}) {
    const std::string candidate = folder + "_evaluator" + suffix;
    if (FILE *f = std::fopen(candidate.c_str(), "rb")) {
      std::fclose(f);
      return candidate;
    }
  }
  return "";
}

std::string environment(const char *name, const std::string &fallback)
{
  const char *value = std::getenv(name);
  return (value && value[0]) ? std::string(value) : fallback;
}

std::string json_number(double x)
{
  if (!std::isfinite(x)) return "NaN";
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", x);
  return text;
}

std::string json_string(const std::string &s)
{
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}    // namespace

struct CoreBridge::Core {
  mlnmr_evaluator_functions api{};
  mlnmr_correlator_functions corr_api{};
  mlnmr_evaluator *evaluator = nullptr;
  mlnmr_correlator correlator{};
  bool correlator_ready = false;
  double cutoff = 0.0;
  double ood_threshold = not_a_number;
  double efg_scale = 1.0;                    // fix EFG units per a.u.
  std::vector<double> cq_per_au_by_z;        // isotope keyword: MHz per a.u. of Vzz; NaN: the evaluator's CQ
  std::vector<unsigned> outputs_by_group;    // MLNMR_HAS_* per element
  std::vector<double> raw;                   // n_centres x MLNMR_OUT_WIDTH
  std::vector<int32_t> centre_numbers, neighbour_numbers;
  std::vector<int64_t> ids;
  std::vector<int32_t> groups;
  std::vector<double> values;
};

CoreBridge::CoreBridge(const BridgeSettings &settings) : settings_(settings), core_(new Core)
{
  Core &c = *core_;
  char error[4096] = "";
  const std::string libpython = environment("MLNMR_LIBPYTHON", MLNMR_LIBPYTHON_DEFAULT);
  const std::string library = environment("MLNMR_EVALUATOR_LIBRARY", sibling_evaluator_library());
  if (library.empty())
    throw BridgeError("cannot find the ase_mlnmr evaluator library (set MLNMR_EVALUATOR_LIBRARY to "
                      "the output of python -c \"from ase_mlnmr.core.evaluator import library_path; "
                      "print(library_path())\")");
  if (mlnmr_evaluator_load(libpython.c_str(), library.c_str(), &c.api, error, sizeof error) != 0)
    throw BridgeError(error);
  c.evaluator = c.api.create(settings_.model_path.c_str(), MLNMR_EVALUATOR_API_VERSION, error, sizeof error);
  if (!c.evaluator) throw BridgeError(std::string("cannot load model file ") + settings_.model_path + ": " + error);
  c.cutoff = c.api.cutoff(c.evaluator);

  auto query = [&](const char *name, const char *argument) {
    double value = not_a_number;
    if (c.api.query(c.evaluator, name, argument, &value, error, sizeof error) != 0)
      throw BridgeError(std::string("query ") + name + " " + argument + ": " + error);
    return value;
  };
  c.ood_threshold = std::isnan(settings_.ood_threshold) ? query("ood_threshold", "") : settings_.ood_threshold;
  c.efg_scale = settings_.efg_units == "V/A2" ? query("efg_au_in_v_per_a2", "") : 1.0;
  c.cq_per_au_by_z.assign(128, not_a_number);
  for (size_t g = 0; g < settings_.elements.size(); ++g) {
    c.outputs_by_group.push_back(c.api.element_outputs(c.evaluator, settings_.element_numbers[g]));
    const auto isotope = settings_.isotope_by_element.find(settings_.elements[g]);
    if (isotope != settings_.isotope_by_element.end())
      c.cq_per_au_by_z[settings_.element_numbers[g]] = query("cq_per_au", isotope->second.c_str());
  }

  if (settings_.acf_window > 0) {
    if (c.api.correlator_import(&c.corr_api, error, sizeof error) != 0)
      throw BridgeError(std::string("cannot import the ase_mlnmr correlator: ") + error);
    mlnmr_corr_config cfg;
    std::memset(&cfg, 0, sizeof cfg);
    cfg.n_channels = 2;
    cfg.dim[0] = 5;    // EFG: lambda = 2 spherical components, a.u.
    cfg.dim[1] = 1;    // shift: delta_iso where calibrated, else sigma_iso, ppm
    cfg.interval[0] = settings_.efg_interval;
    cfg.interval[1] = settings_.every_sigma;
    cfg.dt_fs = settings_.dt_fs;
    cfg.p = correlator_p;
    cfg.m = correlator_m;
    // fewest levels whose longest lag (p - 1) m^(L-1) reaches the window
    cfg.n_levels = 1;
    for (double reach = correlator_p - 1; reach < settings_.acf_window; reach *= correlator_m) ++cfg.n_levels;
    cfg.n_groups = static_cast<int>(std::max<size_t>(settings_.elements.size(), 1));
    cfg.fluctuation_sums = 0;
    const int status = c.corr_api.init(&c.correlator, &cfg);
    if (status != 0) throw BridgeError("correlator configuration refused (status " + std::to_string(status) + ")");
    c.correlator_ready = true;
    correlator_ = &c.correlator;
    summary_.scaling.assign(settings_.elements.size(), not_a_number);
  }
}

CoreBridge::~CoreBridge()
{
  if (core_->correlator_ready) core_->corr_api.free(&core_->correlator);
  if (core_->evaluator) core_->api.free(core_->evaluator);
}

double CoreBridge::model_cutoff() const { return core_->cutoff; }

bool CoreBridge::element_in_model(int atomic_number) const
{
  return core_->api.element_outputs(core_->evaluator, atomic_number) != 0;
}

double CoreBridge::ood_threshold() const { return core_->ood_threshold; }

const char *CoreBridge::efg_unit_name() const { return settings_.efg_units == "V/A2" ? "V/A^2" : "a.u."; }

int CoreBridge::evaluate(const NeighbourCSR &csr, unsigned request, double *outputs, std::string &message)
{
  Core &c = *core_;
  const int64_t n = csr.n_centres();
  unsigned want = 0;
  if (request & REQUEST_EFG) want |= MLNMR_WANT_EFG | MLNMR_WANT_OOD;
  if (request & REQUEST_SIGMA) want |= MLNMR_WANT_SHIELDING;
  if (settings_.skip_unknown) want |= MLNMR_SKIP_UNKNOWN;
  c.raw.resize(static_cast<size_t>(std::max<int64_t>(n, 1)) * MLNMR_OUT_WIDTH);
  c.centre_numbers.assign(csr.centre_numbers.begin(), csr.centre_numbers.end());
  c.neighbour_numbers.assign(csr.neighbour_numbers.begin(), csr.neighbour_numbers.end());
  if (c.centre_numbers.empty()) c.centre_numbers.push_back(0);
  if (c.neighbour_numbers.empty()) c.neighbour_numbers.push_back(0);
  static const double no_vector[3] = {0.0, 0.0, 0.0};
  int64_t bad_centre = -1, bad_pair = -1;
  const int status = c.api.predict(c.evaluator, n, c.centre_numbers.data(), csr.offsets.data(),
                                   csr.displacements.empty() ? no_vector : csr.displacements.data(),
                                   c.neighbour_numbers.data(), want, settings_.threads, c.raw.data(),
                                   &bad_centre, &bad_pair);
  if (status != MLNMR_OK) {
    message = c.api.status_message(status);
    bad_centre_ = bad_centre;
    bad_pair_ = bad_pair;
    return status;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double *r = c.raw.data() + i * MLNMR_OUT_WIDTH;
    double *row = outputs + i * N_EVALUATED_COLUMNS;
    row[COL_SIGMA_ISO] = r[MLNMR_OUT_MS_ISO];
    row[COL_DELTA_ISO] = r[MLNMR_OUT_DELTA_ISO];
    row[COL_ETA] = r[MLNMR_OUT_ETA_Q];
    row[COL_VZZ] = r[MLNMR_OUT_VZZ] * c.efg_scale;
    for (int k = 0; k < 5; ++k) row[COL_V2M_FIRST + k] = r[MLNMR_OUT_EFG_L2 + k] * c.efg_scale;
    row[COL_OOD_SCORE] = r[MLNMR_OUT_OOD];
    // CQ = (CQ per a.u. of the chosen isotope) Vzz[a.u.] for the isotope keyword, else the evaluator's
    const double cq_per_au = c.cq_per_au_by_z[std::min(csr.centre_numbers[i], 127)];
    row[COL_CQ] = std::isnan(cq_per_au) ? r[MLNMR_OUT_CQ] : cq_per_au * r[MLNMR_OUT_VZZ];
    row[COL_SIGMA_ISO_STD] = r[MLNMR_OUT_MS_ISO_STD];
    // |CQ_k| = |CQ per a.u.| |Vzz_k|: the spread scales with the isotope like CQ
    row[COL_CQ_STD] = std::isnan(cq_per_au) ? r[MLNMR_OUT_CQ_STD] : std::fabs(cq_per_au) * r[MLNMR_OUT_VZZ_STD];
    row[COL_VZZ_AXIS_FLAG] = r[MLNMR_OUT_VZZ_AXIS_FLAG];
  }
  message.clear();
  return MLNMR_OK;
}

double CoreBridge::correlator_bytes() const
{
  const mlnmr_correlator &corr = core_->correlator;
  return core_->correlator_ready
      ? 8.0 * (static_cast<double>(corr.capacity) * (corr.state_size + 1) + static_cast<double>(corr.table_size))
      : 0.0;
}

int CoreBridge::correlator_state_doubles_per_atom() const
{
  return core_->correlator_ready ? static_cast<int>(core_->correlator.state_size) : 0;
}

int CoreBridge::correlate(unsigned request, int64_t efg_clock, int64_t sigma_clock, int n, const int64_t *ids,
                          const int *groups, std::string &message)
{
  Core &c = *core_;
  if (static_cast<size_t>(n) * MLNMR_OUT_WIDTH > c.raw.size()) {
    message = "correlate() called for more atoms than the last evaluate()";
    return MLNMR_CORR_ERR_ARGUMENT;
  }
  for (int channel = 0; channel < 2; ++channel) {
    if (channel == 1 && !(request & REQUEST_SIGMA)) continue;
    const int dim = channel == 0 ? 5 : 1;
    c.ids.clear();
    c.groups.clear();
    c.values.clear();
    for (int i = 0; i < n; ++i) {
      const double *raw = c.raw.data() + static_cast<size_t>(i) * MLNMR_OUT_WIDTH;    // evaluator's units
      double x[5];
      if (channel == 0) {
        for (int k = 0; k < 5; ++k) x[k] = raw[MLNMR_OUT_EFG_L2 + k];    // a.u., as the trajectory tool
      } else {
        const bool calibrated = c.outputs_by_group[groups[i]] & MLNMR_HAS_DELTA_ISO;
        x[0] = calibrated ? raw[MLNMR_OUT_DELTA_ISO] : raw[MLNMR_OUT_MS_ISO];
      }
      bool finite = true;
      for (int k = 0; k < dim; ++k) finite = finite && std::isfinite(x[k]);
      if (!finite) continue;    // element without this output, or skipped element
      c.ids.push_back(ids[i]);
      c.groups.push_back(groups[i]);
      c.values.insert(c.values.end(), x, x + dim);
    }
    int64_t bad = -1;
    const int status = c.corr_api.add(&c.correlator, channel, channel == 0 ? efg_clock : sigma_clock,
                                      static_cast<int64_t>(c.ids.size()), c.ids.data(), c.groups.data(),
                                      c.values.data(), &bad);
    if (status != MLNMR_CORR_OK) {
      message = "correlator status " + std::to_string(status) + " on channel " + channel_names[channel] +
          (bad >= 0 ? " for atom ID " + std::to_string(c.ids[bad]) : std::string());
      return status;
    }
  }
  return 0;
}

bool CoreBridge::pack_atom(int64_t id, double *buffer, bool remove)
{
  return core_->corr_api.pack_atom(&core_->correlator, id, buffer, remove ? 1 : 0) == MLNMR_CORR_OK;
}

int CoreBridge::unpack_atom(const double *buffer, std::string &message)
{
  const int status = core_->corr_api.unpack_atom(&core_->correlator, buffer);
  if (status != MLNMR_CORR_OK)
    message = "correlator refused an atom state (status " + std::to_string(status) + ")";
  return status;
}

int CoreBridge::reduce_and_write(MPI_Comm world, int64_t n_efg_samples, std::string &message)
{
  Core &c = *core_;
  int me = 0, nprocs = 1;
  MPI_Comm_rank(world, &me);
  MPI_Comm_size(world, &nprocs);
  const mlnmr_corr_config &cfg = c.correlator.config;
  const int64_t state_size = c.correlator.state_size;
  // every rank's states (sorted by id) to rank 0; rank 0 reduces them in atom-id order
  std::vector<double> local(static_cast<size_t>(std::max<int64_t>(c.correlator.n_atoms, 1) * state_size));
  int status = c.correlator.n_atoms ? c.corr_api.pack_all(&c.correlator, local.data()) : 0;
  int64_t n_local = c.correlator.n_atoms;
  std::vector<int64_t> counts(nprocs);
  MPI_Gather(&n_local, 1, MPI_INT64_T, counts.data(), 1, MPI_INT64_T, 0, world);
  std::vector<double> all;
  std::vector<int> sizes(nprocs), displs(nprocs);
  int64_t n_all = 0;
  if (me == 0) {
    for (int r = 0; r < nprocs; ++r) {
      sizes[r] = static_cast<int>(counts[r] * state_size);
      displs[r] = static_cast<int>(n_all * state_size);
      n_all += counts[r];
    }
    all.resize(static_cast<size_t>(std::max<int64_t>(n_all, 1) * state_size));
  }
  MPI_Gatherv(local.data(), static_cast<int>(n_local * state_size), MPI_DOUBLE, all.data(), sizes.data(),
              displs.data(), MPI_DOUBLE, 0, world);
  std::vector<double> scaling(settings_.elements.size(), not_a_number);
  if (me == 0 && status == 0) {
    const int n_groups = cfg.n_groups;
    const int64_t n_lag = c.corr_api.n_lags(&cfg);
    const size_t block_size = static_cast<size_t>(n_groups) * 2 * correlator_blocks * n_lag;
    std::vector<double> sums(block_size), lag_counts(block_size);
    status = c.corr_api.reduce(&cfg, n_all, all.data(), correlator_blocks, 0, sums.data(), lag_counts.data());
    std::vector<double> lags(2 * n_lag), g(static_cast<size_t>(n_groups) * 2 * n_lag),
        total_sums(g.size()), total_counts(g.size());
    for (int ch = 0; ch < 2 && status == 0; ++ch) status = c.corr_api.lags_fs(&cfg, ch, lags.data() + ch * n_lag);
    const double half_span_fs = 0.5 * n_efg_samples * settings_.efg_interval * settings_.dt_fs;
    std::string plateau_json, shift_json;
    for (int grp = 0; grp < n_groups && status == 0; ++grp) {
      for (int ch = 0; ch < 2; ++ch) {
        const double *s = sums.data() + (static_cast<size_t>(grp) * 2 + ch) * correlator_blocks * n_lag;
        const double *k = lag_counts.data() + (static_cast<size_t>(grp) * 2 + ch) * correlator_blocks * n_lag;
        const size_t at = (static_cast<size_t>(grp) * 2 + ch) * n_lag;
        c.corr_api.normalised(correlator_blocks, n_lag, s, k, g.data() + at);
        for (int64_t li = 0; li < n_lag; ++li) {    // blocks summed in order, as the tool writes them
          double sum = 0.0, count = 0.0;
          for (int b = 0; b < correlator_blocks; ++b) {
            sum += s[b * n_lag + li];
            count += k[b * n_lag + li];
          }
          total_sums[at + li] = sum;
          total_counts[at + li] = count;
        }
      }
      const std::string &name = settings_.elements[grp];
      const double *s = sums.data() + static_cast<size_t>(grp) * 2 * correlator_blocks * n_lag;
      const double *k = lag_counts.data() + static_cast<size_t>(grp) * 2 * correlator_blocks * n_lag;
      double result[4];
      const int found = c.corr_api.plateau(n_lag, lags.data(), correlator_blocks, s, k, half_span_fs, -1.0, -1.0,
                                           result);
      plateau_json += (plateau_json.empty() ? "" : ", ") + json_string(name) + ": ";
      if (found == MLNMR_CORR_OK && result[0] >= 0) {
        scaling[grp] = std::sqrt(result[0]);
        const bool has_err = std::isfinite(result[1]);
        plateau_json += R"({"P": )" + json_number(result[0]) +
            R"(, "P_err": )" + (has_err ? json_number(result[1]) : "null") +
            R"(, "cq_scale": )" + json_number(scaling[grp]) +
            R"(, "cq_scale_err": )" +
            (has_err && scaling[grp] > 0 ? json_number(result[1] / (2 * scaling[grp])) : "null") +
            R"(, "window_fs": [)" + json_number(result[2]) + ", " + json_number(result[3]) + "]}";
      } else {
        const bool sampled = k[0] > 0;    // lag 0 of the first block: atoms of this element sampled
        plateau_json += R"({"P": null, "P_err": null, "cq_scale": null, "error": ")" +
            std::string(sampled ? "no plateau yet (correlator status " + std::to_string(found) + ")"
                                : "no EFG samples of this element") + R"("})";
      }
      if (c.outputs_by_group[grp] & (MLNMR_HAS_DELTA_ISO | MLNMR_HAS_MS_ISO))
        shift_json += (shift_json.empty() ? "" : ", ") + json_string(name) + ": " +
            ((c.outputs_by_group[grp] & MLNMR_HAS_DELTA_ISO) ? R"("delta_iso")" : R"("ms_iso")");
    }
    if (status == 0 && !settings_.acf_file.empty()) {
      std::string groups_json;
      std::vector<const char *> group_names;
      for (const auto &name : settings_.elements) {
        groups_json += (groups_json.empty() ? "" : ", ") + json_string(name);
        group_names.push_back(name.c_str());
      }
      const std::string header = R"({"format": "ase_mlnmr.correlation", "version": 1, )"
          R"("estimator": "multiple-tau", "groups": [)" + groups_json +
          R"(], "channels": ["efg", "shift"], "fluctuation": false, "n_blocks": )" +
          std::to_string(correlator_blocks) + R"(, "plateau": {)" + plateau_json +
          R"(}, "frame_time_fs": )" + json_number(settings_.efg_interval * settings_.dt_fs) +
          R"(, "n_frames": )" + std::to_string(n_efg_samples) + R"(, "shift_quantity": {)" +
          shift_json + R"(}, "p": )" + std::to_string(cfg.p) + R"(, "m": )" + std::to_string(cfg.m) +
          R"(, "n_levels": )" + std::to_string(cfg.n_levels) + R"(, "source": "LAMMPS fix nmr/ml"})";
      status = c.corr_api.write_result(settings_.acf_file.c_str(), header.c_str(), n_groups, group_names.data(),
                                       2, channel_names, n_lag, lags.data(), g.data(), total_sums.data(),
                                       total_counts.data());
    }
  }
  MPI_Bcast(&status, 1, MPI_INT, 0, world);
  if (status != 0) {
    message = "correlator reduction or result file " + settings_.acf_file + " failed (status " +
        std::to_string(status) + ")";
    return status;
  }
  MPI_Bcast(scaling.data(), static_cast<int>(scaling.size()), MPI_DOUBLE, 0, world);
  summary_.scaling = scaling;
  return 0;
}

std::vector<double> CoreBridge::global_state() const
{
  if (!core_->correlator_ready) return {};
  std::vector<double> values(static_cast<size_t>(core_->corr_api.global_state_size()));
  core_->corr_api.pack_global(&core_->correlator.config, values.data());
  return values;
}

int CoreBridge::set_global_state(const double *values, int64_t n, std::string &message)
{
  const std::vector<double> own = global_state();
  if (static_cast<int64_t>(own.size()) != n || !std::equal(own.begin(), own.end(), values)) {
    message = "the restart file's correlator configuration (" + std::to_string(n) +
        " doubles) differs from this fix's (time step, N, every_sigma, acf or elements changed?)";
    return 1;
  }
  return 0;
}

}    // namespace MLNMR
