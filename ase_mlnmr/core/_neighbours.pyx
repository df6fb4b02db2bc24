# cython: language_level=3
"""Cell-list neighbour search (linear in atoms) over a set of points.

The Python side (``ase_mlnmr.neighbours``) turns a periodic, partly periodic or open
structure into points: the atoms themselves (first, in order) followed by the periodic
images that lie within r_cut of the cell. This module bins the points on a Cartesian
grid with bins at least r_cut wide and, for each centre, scans the 27 surrounding bins.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport floor
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport int64_t

cnp.import_array()


cdef int _grow(double** vectors, int64_t** indices, int64_t* capacity) noexcept nogil:
    cdef int64_t new_capacity = capacity[0] * 2 + 1024
    cdef double* new_vectors = <double*>realloc(vectors[0], 3 * new_capacity * sizeof(double))
    if new_vectors == NULL:
        return -1
    vectors[0] = new_vectors
    cdef int64_t* new_indices = <int64_t*>realloc(indices[0], new_capacity * sizeof(int64_t))
    if new_indices == NULL:
        return -1
    indices[0] = new_indices
    capacity[0] = new_capacity
    return 0


def find_neighbours(const double[:, ::1] points, const int64_t[::1] point_atom,
                    const int64_t[::1] centres, double r_cut, int64_t expected_pairs=0):
    """Neighbours within r_cut (Å) of each centre, as CSR arrays.

    Parameters
    ----------
    points : (P, 3) positions; points[i] for i < n_atoms is atom i itself
    point_atom : (P,) atom index each point is an image of
    centres : (C,) indices (< n_atoms) of the centres
    r_cut : cut-off radius, Å
    expected_pairs : capacity hint

    Returns
    -------
    offsets (C+1,) int64, neighbour_atoms (n,) int64, vectors (n, 3) float64 (r_j - r_i)
    """
    cdef Py_ssize_t n_points = points.shape[0], n_centres = centres.shape[0]
    if points.shape[1] != 3 or point_atom.shape[0] != n_points:
        raise ValueError("points must be (P, 3) with one atom index per point")
    if n_points == 0:
        raise ValueError("no points to search")
    pts = np.asarray(points)
    lower = pts.min(axis=0)
    extent = pts.max(axis=0) - lower
    bins = np.maximum(1, np.floor(extent / r_cut)).astype(np.int64)
    # keep the grid at most ~4 bins per point (sparse, open structures)
    while np.prod(bins) > 4 * n_points + 64:
        bins = np.maximum(1, bins // 2)
    bin_width = np.where(extent > 0, extent / bins, 1.0)
    cdef int64_t nbx = bins[0], nby = bins[1], nbz = bins[2]
    cdef double lx = lower[0], ly = lower[1], lz = lower[2]
    cdef double wx = bin_width[0], wy = bin_width[1], wz = bin_width[2]
    cdef int64_t n_bins = nbx * nby * nbz

    point_bin_arr = np.empty(n_points, dtype=np.int64)
    bin_start_arr = np.zeros(n_bins + 1, dtype=np.int64)
    order_arr = np.empty(n_points, dtype=np.int64)
    offsets_arr = np.empty(n_centres + 1, dtype=np.int64)
    cdef int64_t[::1] point_bin = point_bin_arr, bin_start = bin_start_arr, order = order_arr
    cdef int64_t[::1] offsets = offsets_arr
    cdef Py_ssize_t p, c
    cdef int64_t bx, by, bz, b, cx, cy, cz, ix, iy, iz, k, j, centre, count = 0
    cdef int64_t capacity = max(expected_pairs, 1024)
    cdef double r_cut2 = r_cut * r_cut, dx, dy, dz, d2, xi, yi, zi
    cdef double* out_vectors = <double*>malloc(3 * capacity * sizeof(double))
    cdef int64_t* out_atoms = <int64_t*>malloc(capacity * sizeof(int64_t))
    cdef int failed = 0
    if out_vectors == NULL or out_atoms == NULL:
        free(out_vectors)
        free(out_atoms)
        raise MemoryError("neighbour list: cannot allocate output")

    with nogil:
        for p in range(n_points):
            bx = <int64_t>floor((points[p, 0] - lx) / wx)
            by = <int64_t>floor((points[p, 1] - ly) / wy)
            bz = <int64_t>floor((points[p, 2] - lz) / wz)
            bx = min(max(bx, 0), nbx - 1)
            by = min(max(by, 0), nby - 1)
            bz = min(max(bz, 0), nbz - 1)
            point_bin[p] = (bx * nby + by) * nbz + bz
            bin_start[point_bin[p] + 1] += 1
        for b in range(n_bins):
            bin_start[b + 1] += bin_start[b]
        for p in range(n_points):  # counting sort, stable
            b = point_bin[p]
            order[bin_start[b]] = p
            bin_start[b] += 1
        for b in range(n_bins, 0, -1):
            bin_start[b] = bin_start[b - 1]
        bin_start[0] = 0

        offsets[0] = 0
        for c in range(n_centres):
            centre = centres[c]
            xi = points[centre, 0]
            yi = points[centre, 1]
            zi = points[centre, 2]
            b = point_bin[centre]
            cz = b % nbz
            cy = (b // nbz) % nby
            cx = b // (nbz * nby)
            for ix in range(max(cx - 1, 0), min(cx + 2, nbx)):
                for iy in range(max(cy - 1, 0), min(cy + 2, nby)):
                    for iz in range(max(cz - 1, 0), min(cz + 2, nbz)):
                        b = (ix * nby + iy) * nbz + iz
                        for k in range(bin_start[b], bin_start[b + 1]):
                            j = order[k]
                            if j == centre:
                                continue
                            dx = points[j, 0] - xi
                            dy = points[j, 1] - yi
                            dz = points[j, 2] - zi
                            d2 = dx * dx + dy * dy + dz * dz
                            if d2 < r_cut2:
                                if count == capacity:
                                    if _grow(&out_vectors, &out_atoms, &capacity) != 0:
                                        failed = 1
                                        break
                                out_vectors[3 * count] = dx
                                out_vectors[3 * count + 1] = dy
                                out_vectors[3 * count + 2] = dz
                                out_atoms[count] = point_atom[j]
                                count += 1
                        if failed:
                            break
                    if failed:
                        break
                if failed:
                    break
            if failed:
                break
            offsets[c + 1] = count
    if failed:
        free(out_vectors)
        free(out_atoms)
        raise MemoryError("neighbour list: out of memory")
    vectors = np.empty((count, 3))
    atoms = np.empty(count, dtype=np.int64)
    cdef double[:, ::1] vectors_view = vectors
    cdef int64_t[::1] atoms_view = atoms
    with nogil:
        for k in range(count):
            vectors_view[k, 0] = out_vectors[3 * k]
            vectors_view[k, 1] = out_vectors[3 * k + 1]
            vectors_view[k, 2] = out_vectors[3 * k + 2]
            atoms_view[k] = out_atoms[k]
    free(out_vectors)
    free(out_atoms)
    return offsets_arr, atoms, vectors
