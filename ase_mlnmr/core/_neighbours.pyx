# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cell-list neighbour search (linear in atoms) over a set of points, with hashed cells.

The Python side (:mod:`ase_mlnmr.core.neighbours`) turns a periodic, partly periodic or
open structure into points: the atoms themselves (first, in order) followed by the
periodic images that lie within r_cut of the cell. This module puts every point in a
cubic cell of edge w = r_cut (1 + 1e-9), cell coordinates ``c = floor((r − r_min) / w)``
(clipped to [0, 2^40] per axis, so no integer can overflow however far an atom is flung),
and stores only the occupied cells, in a hash table of 2^k ≥ 2 P buckets (P points).
For each centre it scans the 27 cells around its own; in a bucket it keeps the points of
the cell it looks for (hash collisions only cost time, never give duplicates), then the
points closer than r_cut. Memory and time are linear in P whatever the extent of the
points: an exploded MD frame with a few atoms far away costs the same as a compact one.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport floor
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport int64_t, uint64_t

cnp.import_array()


class PairLimitError(ValueError):
    """The search found more pairs than ``max_pairs`` and stopped.

    ``n_pairs`` pairs had been found around the first ``n_centres_done`` centres.
    """

    def __init__(self, n_pairs: int, n_centres_done: int, max_pairs: int) -> None:
        super().__init__(f"more than {max_pairs} neighbour pairs ({n_pairs} around the first "
                         f"{n_centres_done} centres)")
        self.n_pairs = n_pairs
        self.n_centres_done = n_centres_done
        self.max_pairs = max_pairs

# Largest cell coordinate per axis (2^40); beyond it cells merge (still correct, only slower).
cdef double _MAX_CELL = 1099511627776.0

cdef inline uint64_t _cell_hash(int64_t cx, int64_t cy, int64_t cz, uint64_t mask) noexcept nogil:
    """Bucket of a cell: coordinates times large odd constants, xor-ed, masked (mod 2^64)."""
    cdef uint64_t h = (<uint64_t>cx) * <uint64_t>0x9E3779B97F4A7C15
    h ^= (<uint64_t>cy) * <uint64_t>0xC2B2AE3D27D4EB4F
    h ^= (<uint64_t>cz) * <uint64_t>0x165667B19E3779F9
    h ^= h >> 29
    return h & mask


cdef inline int64_t _cell_coordinate(double x, double lower, double width) noexcept nogil:
    cdef double c = floor((x - lower) / width)
    if c < 0.0:
        c = 0.0
    if c > _MAX_CELL:
        c = _MAX_CELL
    return <int64_t>c


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
                    const int64_t[::1] centres, double r_cut, int64_t expected_pairs=0,
                    int64_t max_pairs=-1):
    """Neighbours within r_cut (Å) of each centre, as CSR arrays.

    Parameters
    ----------
    points : (P, 3) finite positions (Å); points[i] for i < n_atoms is atom i itself
    point_atom : (P,) atom index each point is an image of
    centres : (C,) point indices of the centres
    r_cut : cut-off radius, Å (> 0)
    expected_pairs : capacity hint
    max_pairs : stop with :class:`PairLimitError` once more pairs than this are found
        (negative: no limit); bounds time and memory on absurdly dense input

    Returns
    -------
    offsets (C+1,) int64, neighbour_atoms (n,) int64, vectors (n, 3) float64 (r_j - r_i)
    """
    cdef Py_ssize_t n_points = points.shape[0], n_centres = centres.shape[0]
    if points.shape[1] != 3 or point_atom.shape[0] != n_points:
        raise ValueError("points must be (P, 3) with one atom index per point")
    if n_points == 0:
        raise ValueError("no points to search")
    if not (r_cut > 0.0):
        raise ValueError(f"r_cut must be positive, got {r_cut}")
    pts = np.asarray(points)
    if not np.all(np.isfinite(pts)):
        raise ValueError("NaN or inf in the points to search")
    if n_centres and (np.min(centres) < 0 or np.max(centres) >= n_points):
        raise ValueError("centre indices out of range")
    lower = pts.min(axis=0)
    cdef double lx = lower[0], ly = lower[1], lz = lower[2]
    cdef double width = r_cut * (1.0 + 1e-9)
    cdef uint64_t n_buckets = 1
    while n_buckets < 2 * <uint64_t>n_points:
        n_buckets *= 2
    cdef uint64_t mask = n_buckets - 1

    cell_arr = np.empty((n_points, 3), dtype=np.int64)
    point_bucket_arr = np.empty(n_points, dtype=np.int64)
    bucket_start_arr = np.zeros(n_buckets + 1, dtype=np.int64)
    order_arr = np.empty(n_points, dtype=np.int64)
    sorted_xyz_arr = np.empty((n_points, 3), dtype=np.float64)
    sorted_cell_arr = np.empty((n_points, 3), dtype=np.int64)
    offsets_arr = np.empty(n_centres + 1, dtype=np.int64)
    cdef int64_t[:, ::1] cell = cell_arr
    cdef int64_t[::1] point_bucket = point_bucket_arr, bucket_start = bucket_start_arr, order = order_arr
    cdef int64_t[::1] offsets = offsets_arr
    cdef double[:, ::1] sorted_xyz = sorted_xyz_arr
    cdef int64_t[:, ::1] sorted_cell = sorted_cell_arr
    cdef Py_ssize_t p, c
    cdef int64_t b, cx, cy, cz, tx, ty, tz, k, j, centre, count = 0
    cdef int ix, iy, iz
    cdef int64_t capacity = max(expected_pairs, 1024)
    cdef double r_cut2 = r_cut * r_cut, dx, dy, dz, d2, xi, yi, zi
    cdef double* out_vectors = <double*>malloc(3 * capacity * sizeof(double))
    cdef int64_t* out_atoms = <int64_t*>malloc(capacity * sizeof(int64_t))
    cdef int failed = 0, over_limit = 0
    if out_vectors == NULL or out_atoms == NULL:
        free(out_vectors)
        free(out_atoms)
        raise MemoryError("neighbour list: cannot allocate output")

    with nogil:
        for p in range(n_points):
            cell[p, 0] = _cell_coordinate(points[p, 0], lx, width)
            cell[p, 1] = _cell_coordinate(points[p, 1], ly, width)
            cell[p, 2] = _cell_coordinate(points[p, 2], lz, width)
            point_bucket[p] = <int64_t>_cell_hash(cell[p, 0], cell[p, 1], cell[p, 2], mask)
            bucket_start[point_bucket[p] + 1] += 1
        for b in range(<int64_t>n_buckets):
            bucket_start[b + 1] += bucket_start[b]
        for p in range(n_points):  # counting sort by bucket, stable
            b = point_bucket[p]
            order[bucket_start[b]] = p
            bucket_start[b] += 1
        for b in range(<int64_t>n_buckets, 0, -1):
            bucket_start[b] = bucket_start[b - 1]
        bucket_start[0] = 0
        for k in range(n_points):  # bucket-ordered copies: each bucket scan reads contiguous memory
            j = order[k]
            sorted_xyz[k, 0] = points[j, 0]
            sorted_xyz[k, 1] = points[j, 1]
            sorted_xyz[k, 2] = points[j, 2]
            sorted_cell[k, 0] = cell[j, 0]
            sorted_cell[k, 1] = cell[j, 1]
            sorted_cell[k, 2] = cell[j, 2]

        offsets[0] = 0
        for c in range(n_centres):
            centre = centres[c]
            xi = points[centre, 0]
            yi = points[centre, 1]
            zi = points[centre, 2]
            cx = cell[centre, 0]
            cy = cell[centre, 1]
            cz = cell[centre, 2]
            for ix in range(-1, 2):
                tx = cx + ix
                for iy in range(-1, 2):
                    ty = cy + iy
                    for iz in range(-1, 2):
                        tz = cz + iz
                        b = <int64_t>_cell_hash(tx, ty, tz, mask)
                        for k in range(bucket_start[b], bucket_start[b + 1]):
                            if sorted_cell[k, 0] != tx or sorted_cell[k, 1] != ty or sorted_cell[k, 2] != tz:
                                continue
                            dx = sorted_xyz[k, 0] - xi
                            dy = sorted_xyz[k, 1] - yi
                            dz = sorted_xyz[k, 2] - zi
                            d2 = dx * dx + dy * dy + dz * dz
                            if d2 < r_cut2:
                                j = order[k]
                                if j == centre:
                                    continue
                                if max_pairs >= 0 and count >= max_pairs:
                                    over_limit = 1
                                    failed = 1
                                    break
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
        if over_limit:
            raise PairLimitError(int(count) + 1, int(c) + 1, int(max_pairs))
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
