/* Registration of fix nmr/ml with LAMMPS (the one exported symbol of the plugin).
 *
 * The plugin auto-loads into every LAMMPS of the Python environment (entry point
 * lammps.plugins), and its ABI is the C++ class layout of one LAMMPS release, so before
 * touching any class it checks that the running LAMMPS is that release.  On a mismatch
 * it registers nothing and prints one warning: LAMMPS keeps running without the style. */
#include "fix_nmr_ml.h"
#include "lammps.h"
#include "library.h"
#include "utils.h"

#include "lammps_abi.h"

#include <cstring>

using namespace LAMMPS_NS;

namespace {

Fix *create_fix_nmr_ml(LAMMPS *lmp, int argc, char **argv)
{
  return new FixNMRML(lmp, argc, argv);
}

/* Empty when the running LAMMPS is the release this plugin was compiled for, else the
 * reason.  Uses only C entry points and a static function: no class layout involved. */
std::string version_mismatch(void *lmp)
{
  const int running = lammps_version(lmp);
  if (running != MLNMR_LAMMPS_VERSION_ID)
    return fmt::format("LAMMPS version {} but the plugin was built for {}", running,
                       MLNMR_LAMMPS_VERSION_ID);
  const char *descriptor = LAMMPS::git_descriptor();
  if (std::strcmp(descriptor, MLNMR_LAMMPS_GIT_DESCRIPTOR) != 0)
    return fmt::format("LAMMPS git descriptor {} but the plugin was built for {}", descriptor,
                       MLNMR_LAMMPS_GIT_DESCRIPTOR);
  return {};
}

}    // namespace

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp,
                                                                         void *handle,
                                                                         void *regfunc)
{
  const std::string mismatch = version_mismatch(lmp);
  if (!mismatch.empty()) {
    // a plain message on stderr of rank 0 only: Error/Comm are classes whose layout
    // may differ in this LAMMPS
    static bool warned = false;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (!warned && rank == 0)
      fprintf(stderr, "WARNING: ase_mlnmr plugin: fix nmr/ml not registered: %s\n",
              mismatch.c_str());
    warned = true;
    return;
  }
  mlnmr_lammpsplugin_t plugin;
  plugin.version = MLNMR_LAMMPS_VERSION_STRING;
  plugin.style = "fix";
  plugin.name = "nmr/ml";
  plugin.info = "ase_mlnmr machine-learned NMR tensors (fix nmr/ml)";
  plugin.author = "ase_mlnmr developers";
  plugin.creator = reinterpret_cast<mlnmr_plugin_factory *>(&create_fix_nmr_ml);
  plugin.handle = handle;
  (*reinterpret_cast<mlnmr_plugin_register_fn>(regfunc))(&plugin, lmp);
}
