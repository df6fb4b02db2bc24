# cython: language_level=3
"""Cython core: spherical expansion, SOAP power spectrum, lambda-SOAP and contracted
linear lambda-models, for centres given as CSR lists of neighbour displacement vectors.

Input for every entry point (Python wrapper or C ``api`` function) is the same:

* ``offsets[n_centres + 1]`` (int64): neighbours of centre i are ``offsets[i]:offsets[i+1]``;
* ``vectors[n_pairs][3]`` (float64, Å): r_ij = r_j - r_i (periodic images and LAMMPS
  ghosts alike); pairs with |r_ij| >= r_cut are skipped, so a longer list is fine;
* ``species[n_pairs]`` (int32): neighbour species index in [0, n_species).

Coefficients of one centre are stored l-block by l-block: block l is an
M x (2l+1) row-major matrix (M = n_channels * n_max, row = channel * n_max + n,
column = m + l) starting at ``M * l*l``; ``M * (l_max+1)^2`` numbers in all.

Equations (NMR_CONVENTIONS.md, "Descriptors"):
    c^s_nlm = Σ_j fc(r_ij) I_nl(r_ij) Y_lm(r̂_ij)                      (expansion)
    p^{ab}_l = Σ_m c_{a l m} c_{b l m},  a = (s1, n1) <= b = (s2, n2)     (power spectrum)
    q^{λμ}_{ab, l1 l2} = Σ_{m1 m2} C^R(l1 m1, l2 m2 | λ μ) c_{a l1 m1} c_{b l2 m2}
Features that stand for two entries of the full symmetric set (a != b, or l1 != l2)
carry a factor √2, so Euclidean distances between feature vectors equal those of the
full set.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport sqrt, isfinite, M_PI
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.stdint cimport int32_t, int64_t

cnp.import_array()

#: Two neighbours closer than this (Å) are treated as coincident atoms (input error).
MIN_DISTANCE = 1e-4
cdef double MLNMR_MIN_DISTANCE = 1e-4
#: Largest l_max the core supports (scratch buffers are sized for it).
MAX_L = 16
cdef int MLNMR_MAX_L = 16
#: Largest n_max the core supports.
MAX_N = 32
cdef int MLNMR_MAX_N = 32
cdef double SQRT2 = 1.4142135623730951

STATUS_MESSAGES = {
    MLNMR_ERR_COINCIDENT: "coincident atoms: a neighbour is closer than 1e-4 Å to its centre",
    MLNMR_ERR_NONFINITE: "NaN or inf in a neighbour displacement vector",
    MLNMR_ERR_SPECIES: "neighbour species index outside the descriptor's species",
    MLNMR_ERR_MEMORY: "out of memory in the SOAP core",
    MLNMR_ERR_ARGUMENT: "inconsistent neighbour offsets",
}


# --------------------------------------------------------------------------------------
# Real spherical harmonics (orthonormal, no Condon-Shortley phase)
#   Y_l0 = N_l0 Q_l^0(z),  Y_lm = √2 N_lm Q_l^m(z) Re(x+iy)^m,  Y_l,-m = √2 N_lm Q_l^m(z) Im(x+iy)^m
#   N_lm = sqrt((2l+1)/(4π) (l-m)!/(l+m)!),  Q_l^m = P_l^m / sin^m θ (a polynomial in z):
#   Q_m^m = (2m-1)!!,  Q_{m+1}^m = (2m+1) z Q_m^m,
#   Q_l^m = ((2l-1) z Q_{l-1}^m - (l+m-1) Q_{l-2}^m) / (l-m)
# --------------------------------------------------------------------------------------
cdef double[289] _YLM_NORM  # (MAX_L+1)^2, indexed l*l + l + m for m >= 0
cdef double[289] _REC_A     # (2l-1)/(l-m), indexed l*(l+1)/2 + m
cdef double[289] _REC_B     # (l+m-1)/(l-m)

cdef void _init_ylm_norm():
    cdef int l, m, k
    cdef double ratio
    for l in range(MLNMR_MAX_L + 1):
        for m in range(l + 1):
            ratio = 1.0
            for k in range(l - m + 1, l + m + 1):
                ratio /= k
            _YLM_NORM[l * l + l + m] = sqrt((2 * l + 1) / (4.0 * M_PI) * ratio) * (SQRT2 if m > 0 else 1.0)
            if l > m:
                _REC_A[l * (l + 1) // 2 + m] = (2 * l - 1) / <double>(l - m)
                _REC_B[l * (l + 1) // 2 + m] = (l + m - 1) / <double>(l - m)

_init_ylm_norm()


cdef inline void real_spherical_harmonics(double x, double y, double z, int l_max,
                                          double* out) noexcept nogil:
    """Y_lm of the unit vector (x, y, z) into out[l*l + l + m].

    Per m the associated Legendre factors Q_l^m run up l by Q_m^m = (2m − 1)!!,
    Q_{m+1}^m = (2m + 1) z Q_m^m, Q_l^m = A_lm z Q_{l−1}^m − B_lm Q_{l−2}^m (two scalars, no
    table); Y_l^{±m} = N_lm Q_l^m (Re, Im)(x + iy)^m."""
    cdef int l, m, base, rec
    cdef double c_m = 1.0, s_m = 0.0, c_next, qmm = 1.0, q_l, q_1, q_2, value
    for m in range(l_max + 1):
        if m > 0:
            qmm *= (2 * m - 1)
        base = m * m + m            # l*l + l at l = m
        rec = m * (m + 1) // 2 + m  # l*(l+1)/2 + m at l = m
        q_1 = qmm
        q_2 = 0.0
        for l in range(m, l_max + 1):
            if l == m + 1:
                q_l = (2 * m + 1) * z * qmm
            elif l > m + 1:
                q_l = _REC_A[rec] * z * q_1 - _REC_B[rec] * q_2
            else:
                q_l = qmm
            value = _YLM_NORM[base + m] * q_l
            if m == 0:
                out[base] = value
            else:
                out[base + m] = value * c_m
                out[base - m] = value * s_m
            q_2 = q_1
            q_1 = q_l
            base += 2 * l + 2
            rec += l + 1
        c_next = x * c_m - y * s_m
        s_m = x * s_m + y * c_m
        c_m = c_next


def spherical_harmonics(const double[:, ::1] unit_vectors, int l_max):
    """Real spherical harmonics of unit vectors, shape (n, (l_max+1)^2), index l*l + l + m."""
    if unit_vectors.shape[1] != 3:
        raise ValueError("unit_vectors must have shape (n, 3)")
    if l_max < 0 or l_max > MLNMR_MAX_L:
        raise ValueError(f"l_max={l_max} outside the supported range 0..{MLNMR_MAX_L}")
    cdef Py_ssize_t n = unit_vectors.shape[0], i
    out = np.empty((n, (l_max + 1) ** 2))
    cdef double[:, ::1] out_view = out
    with nogil:
        for i in range(n):
            real_spherical_harmonics(unit_vectors[i, 0], unit_vectors[i, 1], unit_vectors[i, 2],
                                     l_max, &out_view[i, 0])
    return out


# --------------------------------------------------------------------------------------
# Spherical expansion of one centre
# --------------------------------------------------------------------------------------
cdef inline int _n_coefficients(const SoapSpec* spec) noexcept nogil:
    return spec.n_channels * spec.n_max * (spec.l_max + 1) * (spec.l_max + 1)


cdef inline void add_scaled_outer(double* block, const double* radial_l, double weight,
                                  const double* y_l, int n_max, int width) noexcept nogil:
    """block[n, m] += (weight R_n) Y_m for an n_max × width block (row-major): the loop over m
    spelled out for widths 1 to 9 (l ≤ 4), so that each row is straight-line code with Y in
    registers; same products and sums, in the same order, as the generic loop."""
    cdef int n, m
    cdef double r, y0, y1, y2, y3, y4, y5, y6, y7, y8
    if width == 1:
        y0 = y_l[0]
        for n in range(n_max):
            block[n] += (weight * radial_l[n]) * y0
    elif width == 3:
        y0 = y_l[0]; y1 = y_l[1]; y2 = y_l[2]
        for n in range(n_max):
            r = weight * radial_l[n]
            block[0] += r * y0; block[1] += r * y1; block[2] += r * y2
            block += 3
    elif width == 5:
        y0 = y_l[0]; y1 = y_l[1]; y2 = y_l[2]; y3 = y_l[3]; y4 = y_l[4]
        for n in range(n_max):
            r = weight * radial_l[n]
            block[0] += r * y0; block[1] += r * y1; block[2] += r * y2; block[3] += r * y3
            block[4] += r * y4
            block += 5
    elif width == 7:
        y0 = y_l[0]; y1 = y_l[1]; y2 = y_l[2]; y3 = y_l[3]; y4 = y_l[4]; y5 = y_l[5]; y6 = y_l[6]
        for n in range(n_max):
            r = weight * radial_l[n]
            block[0] += r * y0; block[1] += r * y1; block[2] += r * y2; block[3] += r * y3
            block[4] += r * y4; block[5] += r * y5; block[6] += r * y6
            block += 7
    elif width == 9:
        y0 = y_l[0]; y1 = y_l[1]; y2 = y_l[2]; y3 = y_l[3]; y4 = y_l[4]; y5 = y_l[5]; y6 = y_l[6]
        y7 = y_l[7]; y8 = y_l[8]
        for n in range(n_max):
            r = weight * radial_l[n]
            block[0] += r * y0; block[1] += r * y1; block[2] += r * y2; block[3] += r * y3
            block[4] += r * y4; block[5] += r * y5; block[6] += r * y6; block[7] += r * y7
            block[8] += r * y8
            block += 9
    else:
        for n in range(n_max):
            r = weight * radial_l[n]
            for m in range(width):
                block[m] += r * y_l[m]
            block += width


cdef int expand_centre(const SoapSpec* spec, int64_t start, int64_t stop,
                       const double* vectors, const int32_t* species,
                       double* coefficients, int64_t* error_pair) noexcept nogil:
    """c_{a l m} of one centre into ``coefficients`` (l-block layout)."""
    cdef int l_max = spec.l_max, n_max = spec.n_max
    cdef int n_lm = (l_max + 1) * (l_max + 1)
    cdef int n_functions = (l_max + 1) * n_max
    cdef int m_rows = spec.n_channels * n_max
    # Local buffers: the compiler knows they cannot alias ``coefficients``.
    cdef double ylm[289]
    cdef double radial[544]  # (MAX_L + 1) * MAX_N
    cdef double r_cut2 = spec.r_cut * spec.r_cut
    cdef double inv_step = 1.0 / spec.step
    cdef double dx, dy, dz, d2, d, inv_d, t, weight
    cdef const double* piece
    cdef int64_t k
    cdef int s, channel, interval, f, l, width
    memset(coefficients, 0, _n_coefficients(spec) * sizeof(double))
    for k in range(start, stop):
        dx = vectors[3 * k]
        dy = vectors[3 * k + 1]
        dz = vectors[3 * k + 2]
        if not (isfinite(dx) and isfinite(dy) and isfinite(dz)):
            error_pair[0] = k
            return MLNMR_ERR_NONFINITE
        d2 = dx * dx + dy * dy + dz * dz
        if d2 >= r_cut2:
            continue
        d = sqrt(d2)
        if d < MLNMR_MIN_DISTANCE:
            error_pair[0] = k
            return MLNMR_ERR_COINCIDENT
        s = species[k]
        if s < 0 or s >= spec.n_species:
            error_pair[0] = k
            return MLNMR_ERR_SPECIES
        inv_d = 1.0 / d
        real_spherical_harmonics(dx * inv_d, dy * inv_d, dz * inv_d, l_max, ylm)
        interval = <int>(d * inv_step)
        if interval >= spec.n_intervals:
            interval = spec.n_intervals - 1
        t = d - interval * spec.step
        piece = spec.radial + <int64_t>interval * n_functions * 4
        for f in range(n_functions):
            radial[f] = ((piece[4 * f] * t + piece[4 * f + 1]) * t + piece[4 * f + 2]) * t + piece[4 * f + 3]
        for channel in range(spec.n_channels):
            if spec.mixing == NULL:
                if channel != s:
                    continue
                weight = 1.0
            else:
                weight = spec.mixing[s * spec.n_channels + channel]
                if weight == 0.0:
                    continue
            for l in range(l_max + 1):
                width = 2 * l + 1
                add_scaled_outer(coefficients + m_rows * l * l + channel * n_max * width,  # n_max x width block
                                 radial + l * n_max, weight, ylm + l * l, n_max, width)
    return MLNMR_OK


cdef inline int _check_offsets(int64_t n_centres, const int64_t* offsets) noexcept nogil:
    cdef int64_t i
    if offsets[0] < 0:
        return MLNMR_ERR_ARGUMENT
    for i in range(n_centres):
        if offsets[i + 1] < offsets[i]:
            return MLNMR_ERR_ARGUMENT
    return MLNMR_OK


cdef inline int _check_spec(const SoapSpec* spec) noexcept nogil:
    """Sizes the fixed per-neighbour buffers of expand_centre can hold."""
    if spec.l_max < 0 or spec.l_max > MLNMR_MAX_L or spec.n_max < 1 or spec.n_max > MLNMR_MAX_N:
        return MLNMR_ERR_ARGUMENT
    if spec.n_channels < 1 or spec.n_species < 1 or spec.n_intervals < 1 or spec.step <= 0.0:
        return MLNMR_ERR_ARGUMENT
    return MLNMR_OK


cdef api int mlnmr_spherical_expansion(const SoapSpec* spec, int64_t n_centres,
                                       const int64_t* offsets, const double* vectors,
                                       const int32_t* species, double* coefficients,
                                       int64_t* error_pair) noexcept nogil:
    """Expansion coefficients of n_centres centres into coefficients[n_centres][n_coeff]."""
    cdef int status = _check_offsets(n_centres, offsets)
    if status == MLNMR_OK:
        status = _check_spec(spec)
    if status != MLNMR_OK:
        return status
    cdef int n_coeff = _n_coefficients(spec)
    cdef int64_t i
    for i in range(n_centres):
        status = expand_centre(spec, offsets[i], offsets[i + 1], vectors, species,
                               coefficients + i * n_coeff, error_pair)
        if status != MLNMR_OK:
            break
    return status


# --------------------------------------------------------------------------------------
# Power spectrum
# --------------------------------------------------------------------------------------
cdef inline int64_t power_spectrum_size(const SoapSpec* spec) noexcept nogil:
    cdef int64_t m_rows = spec.n_channels * spec.n_max
    return (spec.l_max + 1) * m_rows * (m_rows + 1) // 2


cdef inline void row_dots(const double* row_a, const double* row_b, int n_b, int width,
                          double* out) noexcept nogil:
    """out[k] = Σ_m row_a[m] row_b[k·width + m] for k < n_b (rows of ``width``), each sum
    from 0.0 in order of m; spelled out for widths 1 to 9 (l ≤ 4) with row_a in registers."""
    cdef int k, m
    cdef double total, a0, a1, a2, a3, a4, a5, a6, a7, a8
    if width == 1:
        a0 = row_a[0]
        for k in range(n_b):
            total = 0.0
            total += a0 * row_b[0]
            out[k] = total
            row_b += 1
    elif width == 3:
        a0 = row_a[0]; a1 = row_a[1]; a2 = row_a[2]
        for k in range(n_b):
            total = 0.0
            total += a0 * row_b[0]; total += a1 * row_b[1]; total += a2 * row_b[2]
            out[k] = total
            row_b += 3
    elif width == 5:
        a0 = row_a[0]; a1 = row_a[1]; a2 = row_a[2]; a3 = row_a[3]; a4 = row_a[4]
        for k in range(n_b):
            total = 0.0
            total += a0 * row_b[0]; total += a1 * row_b[1]; total += a2 * row_b[2]; total += a3 * row_b[3]
            total += a4 * row_b[4]
            out[k] = total
            row_b += 5
    elif width == 7:
        a0 = row_a[0]; a1 = row_a[1]; a2 = row_a[2]; a3 = row_a[3]; a4 = row_a[4]; a5 = row_a[5]; a6 = row_a[6]
        for k in range(n_b):
            total = 0.0
            total += a0 * row_b[0]; total += a1 * row_b[1]; total += a2 * row_b[2]; total += a3 * row_b[3]
            total += a4 * row_b[4]; total += a5 * row_b[5]; total += a6 * row_b[6]
            out[k] = total
            row_b += 7
    elif width == 9:
        a0 = row_a[0]; a1 = row_a[1]; a2 = row_a[2]; a3 = row_a[3]; a4 = row_a[4]; a5 = row_a[5]; a6 = row_a[6]; a7 = row_a[7]; a8 = row_a[8]
        for k in range(n_b):
            total = 0.0
            total += a0 * row_b[0]; total += a1 * row_b[1]; total += a2 * row_b[2]; total += a3 * row_b[3]
            total += a4 * row_b[4]; total += a5 * row_b[5]; total += a6 * row_b[6]; total += a7 * row_b[7]
            total += a8 * row_b[8]
            out[k] = total
            row_b += 9
    else:
        for k in range(n_b):
            total = 0.0
            for m in range(width):
                total += row_a[m] * row_b[m]
            out[k] = total
            row_b += width

cdef void power_spectrum_from_coefficients(const SoapSpec* spec, const double* coefficients,
                                           double* features) noexcept nogil:
    cdef int m_rows = spec.n_channels * spec.n_max
    cdef int l, a, b, width
    cdef const double* block
    cdef int64_t f = 0
    for l in range(spec.l_max + 1):
        width = 2 * l + 1
        block = coefficients + m_rows * l * l
        for a in range(m_rows):
            row_dots(block + a * width, block + a * width, m_rows - a, width, features + f)
            for b in range(1, m_rows - a):      # off-diagonal pairs (a, b > a) count twice
                features[f + b] = SQRT2 * features[f + b]
            f += m_rows - a


cdef api int mlnmr_power_spectrum(const SoapSpec* spec, int64_t n_centres,
                                  const int64_t* offsets, const double* vectors,
                                  const int32_t* species, double* features,
                                  int64_t* error_pair) noexcept nogil:
    """SOAP power spectrum of n_centres centres into features[n_centres][n_features]."""
    cdef int status = _check_offsets(n_centres, offsets)
    if status == MLNMR_OK:
        status = _check_spec(spec)
    if status != MLNMR_OK:
        return status
    cdef int n_coeff = _n_coefficients(spec)
    cdef int64_t n_features = power_spectrum_size(spec)
    cdef double* coefficients = <double*>malloc(n_coeff * sizeof(double))
    if coefficients == NULL:
        return MLNMR_ERR_MEMORY
    cdef int64_t i
    for i in range(n_centres):
        status = expand_centre(spec, offsets[i], offsets[i + 1], vectors, species,
                               coefficients, error_pair)
        if status != MLNMR_OK:
            break
        power_spectrum_from_coefficients(spec, coefficients, features + i * n_features)
    free(coefficients)
    return status


# --------------------------------------------------------------------------------------
# lambda-SOAP features and the contracted linear model
# --------------------------------------------------------------------------------------
cdef inline int64_t lambda_pair_size(const SoapSpec* spec, const LambdaSpec* lam, int p) noexcept nogil:
    cdef int64_t m_rows = spec.n_channels * spec.n_max
    if lam.l1[p] != lam.l2[p]:
        return m_rows * m_rows
    if lam.lam % 2 == 0:
        return m_rows * (m_rows + 1) // 2
    return m_rows * (m_rows - 1) // 2


cdef inline int64_t lambda_feature_size(const SoapSpec* spec, const LambdaSpec* lam) noexcept nogil:
    cdef int64_t total = spec.n_channels * spec.n_max if lam.two_body else 0
    cdef int p
    for p in range(lam.n_pairs):
        total += lambda_pair_size(spec, lam, p)
    return total


cdef void lambda_features_from_coefficients(const SoapSpec* spec, const LambdaSpec* lam,
                                            const double* coefficients, double* features,
                                            int64_t n_features) noexcept nogil:
    """features[μ][f] (row-major, (2λ+1) x n_features) of one centre."""
    cdef int m_rows = spec.n_channels * spec.n_max
    cdef int n_mu = 2 * lam.lam + 1
    cdef int p, a, b, b_start, w1, w2, mu
    cdef int64_t f = 0, t
    cdef const double* block1
    cdef const double* block2
    cdef const double* block
    cdef double scale
    memset(features, 0, n_mu * n_features * sizeof(double))
    if lam.two_body:
        block = coefficients + m_rows * lam.lam * lam.lam
        for a in range(m_rows):
            for mu in range(n_mu):
                features[mu * n_features + f] = block[a * n_mu + mu]
            f += 1
    for p in range(lam.n_pairs):
        w1 = 2 * lam.l1[p] + 1
        w2 = 2 * lam.l2[p] + 1
        block1 = coefficients + m_rows * lam.l1[p] * lam.l1[p]
        block2 = coefficients + m_rows * lam.l2[p] * lam.l2[p]
        for a in range(m_rows):
            if lam.l1[p] != lam.l2[p]:
                b_start = 0
            elif lam.lam % 2 == 0:
                b_start = a
            else:
                b_start = a + 1
            for b in range(b_start, m_rows):
                scale = 1.0 if (lam.l1[p] == lam.l2[p] and a == b) else SQRT2
                for t in range(lam.cg_offsets[p], lam.cg_offsets[p + 1]):
                    features[lam.cg_mu[t] * n_features + f] += (
                        scale * lam.cg_value[t] * block1[a * w1 + lam.cg_m1[t]] * block2[b * w2 + lam.cg_m2[t]])
                f += 1


cdef api int mlnmr_lambda_features(const SoapSpec* spec, const LambdaSpec* lam, int64_t n_centres,
                                   const int64_t* offsets, const double* vectors,
                                   const int32_t* species, double* features,
                                   int64_t* error_pair) noexcept nogil:
    """lambda-SOAP features into features[n_centres][2λ+1][n_features]."""
    cdef int status = _check_offsets(n_centres, offsets)
    if status == MLNMR_OK:
        status = _check_spec(spec)
    if status != MLNMR_OK:
        return status
    cdef int n_coeff = _n_coefficients(spec)
    cdef int64_t n_features = lambda_feature_size(spec, lam)
    cdef int64_t per_centre = (2 * lam.lam + 1) * n_features
    cdef double* coefficients = <double*>malloc(n_coeff * sizeof(double))
    if coefficients == NULL:
        return MLNMR_ERR_MEMORY
    cdef int64_t i
    for i in range(n_centres):
        status = expand_centre(spec, offsets[i], offsets[i + 1], vectors, species,
                               coefficients, error_pair)
        if status != MLNMR_OK:
            break
        lambda_features_from_coefficients(spec, lam, coefficients, features + i * per_centre, n_features)
    free(coefficients)
    return status


cdef inline void sums_of_products(const double* x, int x_step, const double* Y, int y_step, int n,
                                  int width, double* out) noexcept nogil:
    """out[j] = Σ_{k<n} x[k·x_step] Y[k·y_step + j] for j < width, each sum in the order k = 0, 1, …;
    four (then two, one) j at a time, their sums kept in registers (one load of x[k] serves
    four multiply-adds)."""
    cdef int j = 0, k
    cdef double s0, s1, s2, s3, value
    cdef const double* y_row
    while j + 4 <= width:
        s0 = 0.0; s1 = 0.0; s2 = 0.0; s3 = 0.0
        for k in range(n):
            value = x[k * x_step]
            y_row = Y + k * y_step + j
            s0 += value * y_row[0]
            s1 += value * y_row[1]
            s2 += value * y_row[2]
            s3 += value * y_row[3]
        out[j] = s0; out[j + 1] = s1; out[j + 2] = s2; out[j + 3] = s3
        j += 4
    if j + 2 <= width:
        s0 = 0.0; s1 = 0.0
        for k in range(n):
            value = x[k * x_step]
            s0 += value * Y[k * y_step + j]
            s1 += value * Y[k * y_step + j + 1]
        out[j] = s0; out[j + 1] = s1
        j += 2
    if j < width:
        s0 = 0.0
        for k in range(n):
            s0 += x[k * x_step] * Y[k * y_step + j]
        out[j] = s0


cdef inline void sums_of_products_two_rows(const double* x, int x_step, const double* Y,
                                           int y_step, int n, int width, double* out0,
                                           double* out1) noexcept nogil:
    """:func:`sums_of_products` for two neighbouring x at once, x and x + 1 (two columns of a
    coefficient block): out0[j] = Σ_k x[k·x_step] Y[k·y_step + j], out1[j] = Σ_k x[k·x_step + 1]
    Y[k·y_step + j], each sum in the order k = 0, 1, …; four j at a time (one load of four Y
    serves eight multiply-adds), the last width mod 4 columns by :func:`sums_of_products`."""
    cdef int j = 0, k
    cdef double s0, s1, s2, s3, t0, t1, t2, t3, u, v
    cdef const double* y_row
    while j + 4 <= width:
        s0 = 0.0; s1 = 0.0; s2 = 0.0; s3 = 0.0
        t0 = 0.0; t1 = 0.0; t2 = 0.0; t3 = 0.0
        for k in range(n):
            u = x[k * x_step]
            v = x[k * x_step + 1]
            y_row = Y + k * y_step + j
            s0 += u * y_row[0]
            s1 += u * y_row[1]
            s2 += u * y_row[2]
            s3 += u * y_row[3]
            t0 += v * y_row[0]
            t1 += v * y_row[1]
            t2 += v * y_row[2]
            t3 += v * y_row[3]
        out0[j] = s0; out0[j + 1] = s1; out0[j + 2] = s2; out0[j + 3] = s3
        out1[j] = t0; out1[j + 1] = t1; out1[j + 2] = t2; out1[j + 3] = t3
        j += 4
    if j < width:
        sums_of_products(x, x_step, Y + j, y_step, n, width - j, out0 + j)
        sums_of_products(x + 1, x_step, Y + j, y_step, n, width - j, out1 + j)


cdef void contract_centre(const SoapSpec* spec, const LambdaSpec* lam, const ContractionSpec* weights,
                          const double* coefficients, double* scratch, double* output) noexcept nogil:
    """output[μ] = Σ_f w_f q^{λμ}_f without building q (weights folded per (l1, l2) pair):
    G = c_{l1}^T W_p c_{l2} (w1 x w2), output[μ] += Σ C^R(m1, m2, μ) G[m1, m2], in two small
    products by ``sums_of_products``: A = c_{l1}^T W_p (w1 x M; for l1 = l2 W_p is upper
    triangular, see ``LambdaSOAP.fold_weights``, and the terms a > b, zero, are skipped per
    block of four b), then G = A c_{l2}."""
    cdef int m_rows = spec.n_channels * spec.n_max
    cdef int n_mu = 2 * lam.lam + 1
    cdef int p, a, b, w1, w2, mu, m1, width, n_sum
    cdef int64_t t
    cdef const double* block1
    cdef const double* block2
    cdef const double* W
    cdef double* product = scratch                        # A: w1 x M
    cdef double* gram = scratch + m_rows * (2 * spec.l_max + 1)   # G: w1 x w2
    cdef double value
    for mu in range(n_mu):
        output[mu] = 0.0
    if lam.two_body and weights.two_body_weights != NULL:
        block1 = coefficients + m_rows * lam.lam * lam.lam
        for a in range(m_rows):
            value = weights.two_body_weights[a]
            for mu in range(n_mu):
                output[mu] += value * block1[a * n_mu + mu]
    for p in range(lam.n_pairs):
        w1 = 2 * lam.l1[p] + 1
        w2 = 2 * lam.l2[p] + 1
        block1 = coefficients + m_rows * lam.l1[p] * lam.l1[p]
        block2 = coefficients + m_rows * lam.l2[p] * lam.l2[p]
        W = weights.pair_weights + <int64_t>p * m_rows * m_rows
        for b in range(0, m_rows, 4):   # A[m1, b] = Σ_a c_{l1}[a, m1] W[a, b], four b and two m1 at a time
            width = min(4, m_rows - b)
            n_sum = b + width if lam.l1[p] == lam.l2[p] else m_rows   # W upper triangular: a ≤ b
            for m1 in range(0, w1 - 1, 2):
                sums_of_products_two_rows(block1 + m1, w1, W + b, m_rows, n_sum, width,
                                          product + m1 * m_rows + b, product + (m1 + 1) * m_rows + b)
            sums_of_products(block1 + w1 - 1, w1, W + b, m_rows, n_sum, width, product + (w1 - 1) * m_rows + b)
        for m1 in range(w1):            # G[m1, m2] = Σ_b A[m1, b] c_{l2}[b, m2]
            sums_of_products(product + m1 * m_rows, 1, block2, w2, m_rows, w2, gram + m1 * w2)
        for t in range(lam.cg_offsets[p], lam.cg_offsets[p + 1]):
            output[lam.cg_mu[t]] += lam.cg_value[t] * gram[lam.cg_m1[t] * w2 + lam.cg_m2[t]]


cdef api int mlnmr_lambda_contract(const SoapSpec* spec, const LambdaSpec* lam,
                                   const ContractionSpec* weights, int64_t n_centres,
                                   const int64_t* offsets, const double* vectors,
                                   const int32_t* species, double* output,
                                   int64_t* error_pair) noexcept nogil:
    """Linear λ-model outputs (spherical components) into output[n_centres][2λ+1]."""
    cdef int status = _check_offsets(n_centres, offsets)
    if status == MLNMR_OK:
        status = _check_spec(spec)
    if status != MLNMR_OK:
        return status
    cdef int m_rows = spec.n_channels * spec.n_max
    cdef int n_coeff = _n_coefficients(spec)
    cdef int64_t scratch_size = contraction_scratch_size(spec)
    cdef double* coefficients = <double*>malloc((n_coeff + scratch_size) * sizeof(double))
    if coefficients == NULL:
        return MLNMR_ERR_MEMORY
    cdef double* scratch = coefficients + n_coeff
    cdef int n_mu = 2 * lam.lam + 1
    cdef int64_t i
    for i in range(n_centres):
        status = expand_centre(spec, offsets[i], offsets[i + 1], vectors, species,
                               coefficients, error_pair)
        if status != MLNMR_OK:
            break
        contract_centre(spec, lam, weights, coefficients, scratch, output + i * n_mu)
    free(coefficients)
    return status


# --------------------------------------------------------------------------------------
# Python-facing objects owning the specs
# --------------------------------------------------------------------------------------
def _raise_for_status(int status, int64_t error_pair, offsets):
    if status == MLNMR_OK:
        return
    message = STATUS_MESSAGES.get(status, f"SOAP core error {status}")
    if status in (MLNMR_ERR_COINCIDENT, MLNMR_ERR_NONFINITE, MLNMR_ERR_SPECIES):
        centre = int(np.searchsorted(np.asarray(offsets), error_pair, side="right") - 1)
        message += f" (centre {centre}, neighbour entry {error_pair})"
    if status == MLNMR_ERR_MEMORY:
        raise MemoryError(message)
    raise ValueError(message)


cdef class SoapCore:
    """Owns the arrays behind a ``SoapSpec`` and runs the expansion / power spectrum.

    Parameters
    ----------
    radial_coefficients : (n_intervals, (l_max+1)*n_max, 4) cubic pieces (see radial_basis)
    step, r_cut : table step and cut-off radius, Å
    n_max, l_max : radial functions per l, highest l
    n_species : number of neighbour species indices accepted
    mixing : optional (n_species, n_channels) species-to-channel weights
    """
    cdef SoapSpec spec
    cdef readonly object radial_coefficients
    cdef readonly object mixing

    def __init__(self, radial_coefficients, double step, double r_cut, int n_max, int l_max,
                 int n_species, mixing=None):
        if l_max < 0 or l_max > MLNMR_MAX_L:
            raise ValueError(f"l_max={l_max} outside the supported range 0..{MLNMR_MAX_L}")
        if n_max < 1 or n_max > MLNMR_MAX_N or n_species < 1:
            raise ValueError(f"need 1 <= n_max <= {MLNMR_MAX_N} and n_species >= 1, got {n_max}, {n_species}")
        table = np.ascontiguousarray(radial_coefficients, dtype=np.float64)
        if table.ndim != 3 or table.shape[1] != (l_max + 1) * n_max or table.shape[2] != 4:
            raise ValueError(f"radial table shape {table.shape} does not match n_max={n_max}, l_max={l_max}")
        self.radial_coefficients = table
        n_channels = n_species
        if mixing is not None:
            mix = np.ascontiguousarray(mixing, dtype=np.float64)
            if mix.ndim != 2 or mix.shape[0] != n_species or not np.all(np.isfinite(mix)):
                raise ValueError(f"mixing must be a finite ({n_species}, n_channels) array, got shape {mix.shape}")
            n_channels = mix.shape[1]
            self.mixing = mix
        else:
            self.mixing = None
        self.spec.n_species = n_species
        self.spec.n_channels = n_channels
        self.spec.n_max = n_max
        self.spec.l_max = l_max
        self.spec.r_cut = r_cut
        self.spec.step = step
        self.spec.n_intervals = table.shape[0]
        self.spec.radial = <const double*>cnp.PyArray_DATA(table)
        self.spec.mixing = NULL if self.mixing is None else <const double*>cnp.PyArray_DATA(self.mixing)

    @property
    def n_channels(self) -> int:
        return self.spec.n_channels

    @property
    def n_coefficients(self) -> int:
        return _n_coefficients(&self.spec)

    @property
    def n_power_spectrum(self) -> int:
        return power_spectrum_size(&self.spec)

    @property
    def spec_address(self) -> int:
        """Address of the C ``SoapSpec`` (valid while this object lives), for C/C++ callers."""
        return <size_t>&self.spec

    def spherical_expansion(self, offsets, vectors, species):
        """Coefficients, shape (n_centres, n_coefficients), l-block layout (module doc)."""
        off, vec, spc = _prepare(offsets, vectors, species)
        out = np.empty((off.shape[0] - 1, _n_coefficients(&self.spec)))
        cdef int status
        cdef int64_t error_pair = -1
        cdef CsrInput csr = _csr_input(off, vec, spc)
        cdef double* p_out = <double*>cnp.PyArray_DATA(out)
        with nogil:
            status = mlnmr_spherical_expansion(&self.spec, csr.n_centres, csr.offsets, csr.vectors, csr.species, p_out,
                                                       &error_pair)
        _raise_for_status(status, error_pair, off)
        return out

    def power_spectrum(self, offsets, vectors, species):
        """Power spectrum, shape (n_centres, n_power_spectrum)."""
        off, vec, spc = _prepare(offsets, vectors, species)
        out = np.empty((off.shape[0] - 1, power_spectrum_size(&self.spec)))
        cdef int status
        cdef int64_t error_pair = -1
        cdef CsrInput csr = _csr_input(off, vec, spc)
        cdef double* p_out = <double*>cnp.PyArray_DATA(out)
        with nogil:
            status = mlnmr_power_spectrum(&self.spec, csr.n_centres, csr.offsets, csr.vectors, csr.species, p_out,
                                                       &error_pair)
        _raise_for_status(status, error_pair, off)
        return out


def _prepare(offsets, vectors, species):
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    vec = np.ascontiguousarray(vectors, dtype=np.float64)
    spc = np.ascontiguousarray(species, dtype=np.int32)
    if off.ndim != 1 or off.shape[0] < 1:
        raise ValueError("offsets must be a 1-d array of length n_centres + 1")
    n_pairs = vec.shape[0] if vec.ndim == 2 else -1
    if vec.ndim != 2 or vec.shape[1] != 3:
        raise ValueError(f"vectors must have shape (n_pairs, 3), got {vec.shape}")
    if spc.shape != (n_pairs,):
        raise ValueError(f"species must have shape ({n_pairs},), got {spc.shape}")
    if off[0] != 0 or off[len(off) - 1] != n_pairs or np.any(np.diff(off) < 0):
        raise ValueError("offsets must start at 0, be non-decreasing and end at n_pairs")
    return off, vec, spc


cdef struct CsrInput:
    int64_t n_centres
    const int64_t* offsets
    const double* vectors
    const int32_t* species


cdef CsrInput _csr_input(off, vec, spc):
    """Raw pointers into arrays already checked by ``_prepare`` (kept alive by the caller)."""
    cdef CsrInput csr
    csr.n_centres = off.shape[0] - 1
    csr.offsets = <const int64_t*>cnp.PyArray_DATA(off)
    csr.vectors = <const double*>cnp.PyArray_DATA(vec)
    csr.species = <const int32_t*>cnp.PyArray_DATA(spc)
    return csr


cdef class LambdaCore:
    """lambda-SOAP features and contracted linear λ-models on top of a ``SoapCore``.

    Parameters
    ----------
    soap : the SoapCore giving the expansion
    lam : λ
    pairs : (n_pairs, 2) int array of (l1, l2) couplings
    cg_offsets, cg_m1, cg_m2, cg_mu, cg_value : sparse real coupling coefficients per pair
    two_body : include the c_{n λ μ} features first
    """
    cdef LambdaSpec spec
    cdef readonly SoapCore soap
    cdef object _keep

    def __init__(self, SoapCore soap, int lam, pairs, cg_offsets, cg_m1, cg_m2, cg_mu, cg_value,
                 bint two_body=True):
        pairs = np.ascontiguousarray(pairs, dtype=np.int32).reshape(-1, 2)
        if two_body and lam > soap.spec.l_max:
            raise ValueError(f"two-body λ={lam} features need l_max >= λ (l_max={soap.spec.l_max})")
        if np.any(pairs > soap.spec.l_max) or np.any(pairs < 0):
            raise ValueError("coupling pairs use l outside 0..l_max")
        l1 = np.ascontiguousarray(pairs[:, 0])
        l2 = np.ascontiguousarray(pairs[:, 1])
        arrays = [
            l1, l2,
            np.ascontiguousarray(cg_offsets, dtype=np.int64),
            np.ascontiguousarray(cg_m1, dtype=np.int32),
            np.ascontiguousarray(cg_m2, dtype=np.int32),
            np.ascontiguousarray(cg_mu, dtype=np.int32),
            np.ascontiguousarray(cg_value, dtype=np.float64),
        ]
        if arrays[2].shape[0] != pairs.shape[0] + 1:
            raise ValueError("cg_offsets must have n_pairs + 1 entries")
        self._keep = arrays
        self.soap = soap
        self.spec.lam = lam
        self.spec.n_pairs = pairs.shape[0]
        self.spec.l1 = <const int32_t*>cnp.PyArray_DATA(arrays[0])
        self.spec.l2 = <const int32_t*>cnp.PyArray_DATA(arrays[1])
        self.spec.cg_offsets = <const int64_t*>cnp.PyArray_DATA(arrays[2])
        self.spec.cg_m1 = <const int32_t*>cnp.PyArray_DATA(arrays[3])
        self.spec.cg_m2 = <const int32_t*>cnp.PyArray_DATA(arrays[4])
        self.spec.cg_mu = <const int32_t*>cnp.PyArray_DATA(arrays[5])
        self.spec.cg_value = <const double*>cnp.PyArray_DATA(arrays[6])
        self.spec.two_body = 1 if two_body else 0

    @property
    def n_features(self) -> int:
        return lambda_feature_size(&self.soap.spec, &self.spec)

    def pair_sizes(self):
        """Number of features of each (l1, l2) pair, in order."""
        return [lambda_pair_size(&self.soap.spec, &self.spec, p) for p in range(self.spec.n_pairs)]

    @property
    def spec_address(self) -> int:
        """Address of the C ``LambdaSpec`` (valid while this object lives)."""
        return <size_t>&self.spec

    def features(self, offsets, vectors, species):
        """lambda-SOAP features, shape (n_centres, 2λ+1, n_features)."""
        off, vec, spc = _prepare(offsets, vectors, species)
        out = np.empty((off.shape[0] - 1, 2 * self.spec.lam + 1, self.n_features))
        cdef int status
        cdef int64_t error_pair = -1
        cdef CsrInput csr = _csr_input(off, vec, spc)
        cdef double* p_out = <double*>cnp.PyArray_DATA(out)
        with nogil:
            status = mlnmr_lambda_features(&self.soap.spec, &self.spec, csr.n_centres, csr.offsets, csr.vectors,
                                           csr.species, p_out, &error_pair)
        _raise_for_status(status, error_pair, off)
        return out

    def contract(self, offsets, vectors, species, pair_weights, two_body_weights=None):
        """Σ_f w_f q^{λμ}_f for folded weights, shape (n_centres, 2λ+1).

        pair_weights: (n_pairs, M, M) float64; two_body_weights: (M,) or None.
        """
        off, vec, spc = _prepare(offsets, vectors, species)
        cdef int m_rows = self.soap.spec.n_channels * self.soap.spec.n_max
        pw = np.ascontiguousarray(pair_weights, dtype=np.float64)
        if pw.shape != (self.spec.n_pairs, m_rows, m_rows):
            raise ValueError(f"pair_weights must have shape {(self.spec.n_pairs, m_rows, m_rows)}, got {pw.shape}")
        cdef ContractionSpec weights
        weights.pair_weights = <const double*>cnp.PyArray_DATA(pw)
        weights.two_body_weights = NULL
        if two_body_weights is not None:
            tw = np.ascontiguousarray(two_body_weights, dtype=np.float64)
            if tw.shape != (m_rows,):
                raise ValueError(f"two_body_weights must have shape ({m_rows},), got {tw.shape}")
            weights.two_body_weights = <const double*>cnp.PyArray_DATA(tw)
        out = np.empty((off.shape[0] - 1, 2 * self.spec.lam + 1))
        cdef int status
        cdef int64_t error_pair = -1
        cdef CsrInput csr = _csr_input(off, vec, spc)
        cdef double* p_out = <double*>cnp.PyArray_DATA(out)
        with nogil:
            status = mlnmr_lambda_contract(&self.soap.spec, &self.spec, &weights, csr.n_centres, csr.offsets,
                                           csr.vectors, csr.species, p_out, &error_pair)
        _raise_for_status(status, error_pair, off)
        return out
