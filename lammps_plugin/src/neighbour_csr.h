/* CSR neighbour data of the centres of one MPI rank, in the layout the compiled
 * evaluator of ase_mlnmr consumes (issue 10): for centre c, its neighbours are the
 * entries offsets[c] .. offsets[c+1]-1 of `displacements` (r_j - r_i in Angstrom,
 * 3 doubles each, ghosts and periodic images included) and `neighbour_numbers`
 * (atomic numbers Z_j).  Only pairs with |r_j - r_i| <= cutoff are kept. */
#ifndef MLNMR_NEIGHBOUR_CSR_H
#define MLNMR_NEIGHBOUR_CSR_H

#include <cstdint>
#include <vector>

namespace LAMMPS_NS {
class NeighList;
}

namespace MLNMR {

struct NeighbourCSR {
  std::vector<int> centre_local_index;    // LAMMPS local index i of each centre
  std::vector<int> centre_numbers;        // Z_i
  std::vector<int64_t> offsets;           // size n_centres + 1
  std::vector<double> displacements;      // 3 per pair, Angstrom
  std::vector<int> neighbour_numbers;     // Z_j per pair

  int n_centres() const { return static_cast<int>(centre_local_index.size()); }
};

/* Fill `csr` from a FULL neighbour list: centres are the owned atoms of the list whose
 * mask has `groupbit`; Z comes from type_to_number[type] (index 1..ntypes).  Pairs with
 * squared distance above cutoff^2 are dropped (the list is built at cutoff + skin). */
void build_neighbour_csr(const LAMMPS_NS::NeighList *list, double *const *x, const int *type,
                         const int *mask, int groupbit, const std::vector<int> &type_to_number,
                         double cutoff, NeighbourCSR &csr);

}    // namespace MLNMR

#endif
