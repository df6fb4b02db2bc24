#include "neighbour_csr.h"

#include "lmptype.h"
#include "neigh_list.h"

namespace MLNMR {

void build_neighbour_csr(const LAMMPS_NS::NeighList *list, double *const *x, const int *type,
                         const int *mask, int groupbit, const std::vector<int> &type_to_number,
                         double cutoff, NeighbourCSR &csr)
{
  csr.centre_local_index.clear();
  csr.centre_numbers.clear();
  csr.offsets.assign(1, 0);
  csr.displacements.clear();
  csr.neighbour_numbers.clear();
  const double cutoff_sq = cutoff * cutoff;

  for (int ii = 0; ii < list->inum; ++ii) {
    const int i = list->ilist[ii];
    if (!(mask[i] & groupbit)) continue;
    csr.centre_local_index.push_back(i);
    csr.centre_numbers.push_back(type_to_number[type[i]]);
    const int *neighbours = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = neighbours[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0];
      const double dy = x[j][1] - x[i][1];
      const double dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz > cutoff_sq) continue;
      csr.displacements.insert(csr.displacements.end(), {dx, dy, dz});
      csr.neighbour_numbers.push_back(type_to_number[type[j]]);
    }
    csr.offsets.push_back(static_cast<int64_t>(csr.neighbour_numbers.size()));
  }
}

}    // namespace MLNMR
