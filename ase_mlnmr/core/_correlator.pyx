# cython: language_level=3
"""Streaming time-correlation accumulator: a multiple-tau correlator per atom and channel.

The one implementation of the correlator, used by the trajectory tools (through the
Python class :class:`StreamingCorrelator`) and by the LAMMPS fix (through the ``cdef api``
C entry points of the generated ``_correlator_api.h``; types in ``mlnmr_core.h``).

Algorithm (Ramírez, Sukumaran, Vorselaars, Likhtman, J. Chem. Phys. 133, 154103 (2010),
doi:10.1063/1.3491098). Level 0 keeps the last ``p`` samples x(t) of a channel and adds
x(t)·x(t − j) to the sum of lag j for j = 0..p−1: for these lags the sums are the
all-origins sums, exactly. Every ``m`` values of level k are averaged into one value of
level k+1, which adds products at block lags j = p/m..p−1, i.e. lags j·m^(k+1) samples. The
product of block averages estimates C(j·m^k) smoothed by a triangle of half-width m^k:
the bias is (m^(2k)/6)·C''/2 = m^(2k) C''(s)/12 to second order (zero for a constant or a
linear C), see docs/trajectory.md.

Per lag and atom the state keeps Σ x(t0+s)·x(t0), the number of terms and, with
``fluctuation_sums``, Σ x(t0) and Σ x(t0+s): the fluctuation form about the atom's own
mean x̄ follows at the end as Σ(x(t0+s) − x̄)·(x(t0) − x̄) = Σ x'x − x̄·Σx(t0) − x̄·Σx(t0+s)
+ N |x̄|².

Per-atom state (doubles), ``d`` components per channel, ``L`` levels, N_lag = p + (L−1)(p − p/m):
``4 + Σ_channels [2 + d + L (2 + d + p d) + N_lag (2 + 2 d f)]`` with f = 1 if
``fluctuation_sums`` else 0.
"""
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free, qsort
from libc.string cimport memcpy, memset, strlen
from libc.math cimport sqrt, isfinite, NAN
from libc.stdio cimport FILE, fopen, fclose, fprintf, fputs, fflush, rename, remove

cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef double STATE_MAGIC = 7345001.0   # first double of a packed atom state (layout version 1)
cdef double GLOBAL_MAGIC = 7345101.0  # first double of a packed global state
cdef int HEADER = 4                   # magic, atom id, group, state size

# ----------------------------------------------------------------------------- layout

cdef inline int64_t _n_lags(const CorrConfig* cfg) noexcept nogil:
    return cfg.p + <int64_t>(cfg.n_levels - 1) * (cfg.p - cfg.p // cfg.m)


cdef inline int64_t _level_size(const CorrConfig* cfg, int d) noexcept nogil:
    return 2 + d + <int64_t>cfg.p * d


cdef inline int64_t _lag_entry(const CorrConfig* cfg, int d) noexcept nogil:
    return 2 + (2 * d if cfg.fluctuation_sums else 0)


cdef inline int64_t _channel_size(const CorrConfig* cfg, int d) noexcept nogil:
    return 2 + d + cfg.n_levels * _level_size(cfg, d) + _n_lags(cfg) * _lag_entry(cfg, d)


cdef inline int64_t _channel_offset(const CorrConfig* cfg, int channel) noexcept nogil:
    cdef int64_t offset = HEADER
    cdef int c
    for c in range(channel):
        offset += _channel_size(cfg, cfg.dim[c])
    return offset


cdef inline int64_t _lag_index(const CorrConfig* cfg, int level, int j) noexcept nogil:
    if level == 0:
        return j
    return cfg.p + <int64_t>(level - 1) * (cfg.p - cfg.p // cfg.m) + (j - cfg.p // cfg.m)


cdef api int mlnmr_corr_check_config(const CorrConfig* cfg) noexcept nogil:
    """MLNMR_CORR_OK if the configuration is usable, else MLNMR_CORR_ERR_ARGUMENT."""
    cdef int c
    if cfg == NULL or cfg.n_channels < 1 or cfg.n_channels > MLNMR_CORR_MAX_CHANNELS:
        return MLNMR_CORR_ERR_ARGUMENT
    if cfg.m < 2 or cfg.p < cfg.m or cfg.p % cfg.m != 0 or cfg.n_levels < 1 or cfg.n_levels > 60:
        return MLNMR_CORR_ERR_ARGUMENT
    if cfg.n_groups < 1 or not (cfg.dt_fs > 0.0) or not isfinite(cfg.dt_fs):
        return MLNMR_CORR_ERR_ARGUMENT
    if cfg.fluctuation_sums != 0 and cfg.fluctuation_sums != 1:
        return MLNMR_CORR_ERR_ARGUMENT
    for c in range(cfg.n_channels):
        if cfg.dim[c] < 1 or cfg.dim[c] > MLNMR_CORR_MAX_DIM or cfg.interval[c] < 1:
            return MLNMR_CORR_ERR_ARGUMENT
    return MLNMR_CORR_OK


cdef api int64_t mlnmr_corr_atom_state_size(const CorrConfig* cfg) noexcept nogil:
    """Doubles in one atom's packed state (the formula in the module docstring); -1 if invalid."""
    if mlnmr_corr_check_config(cfg) != MLNMR_CORR_OK:
        return -1
    return _channel_offset(cfg, cfg.n_channels)


cdef api int64_t mlnmr_corr_n_lags(const CorrConfig* cfg) noexcept nogil:
    """Lags per channel, p + (n_levels − 1)(p − p/m); -1 if the configuration is invalid."""
    if mlnmr_corr_check_config(cfg) != MLNMR_CORR_OK:
        return -1
    return _n_lags(cfg)


cdef api int mlnmr_corr_lags_fs(const CorrConfig* cfg, int channel, double* lags_fs) noexcept nogil:
    """Lag times (fs) of the n_lags entries of ``channel``: j·m^k samples × interval × dt."""
    cdef int k, j
    cdef double block = 1.0
    cdef double sample_fs
    if mlnmr_corr_check_config(cfg) != MLNMR_CORR_OK:
        return MLNMR_CORR_ERR_ARGUMENT
    if channel < 0 or channel >= cfg.n_channels:
        return MLNMR_CORR_ERR_CHANNEL
    sample_fs = cfg.interval[channel] * cfg.dt_fs
    for k in range(cfg.n_levels):
        for j in range(0 if k == 0 else cfg.p // cfg.m, cfg.p):
            lags_fs[_lag_index(cfg, k, j)] = j * block * sample_fs
        block *= cfg.m
    return MLNMR_CORR_OK


# ------------------------------------------------------------------ one atom, one sample

cdef void _add_level(const CorrConfig* cfg, double* channel_state, int d, int level,
                     const double* value) noexcept nogil:
    """Insert ``value`` (d doubles) into ``level`` and add its products with earlier values."""
    cdef int64_t level_size = _level_size(cfg, d)
    cdef int64_t lag_entry = _lag_entry(cfg, d)
    cdef double* lev
    cdef double* accumulator
    cdef double* shift
    cdef double* old
    cdef double* entry
    cdef double* lags = channel_state + 2 + d + cfg.n_levels * level_size
    cdef double block[9]
    cdef int64_t n, position, j, j_max
    cdef int c
    cdef double product
    if level >= cfg.n_levels:
        return
    lev = channel_state + 2 + d + level * level_size
    accumulator = lev + 2
    shift = lev + 2 + d
    n = <int64_t>lev[0]
    position = n % cfg.p
    memcpy(shift + position * d, value, d * sizeof(double))
    for c in range(d):
        accumulator[c] += value[c]
    lev[1] += 1.0
    if lev[1] == cfg.m:
        for c in range(d):
            block[c] = accumulator[c] / cfg.m
            accumulator[c] = 0.0
        lev[1] = 0.0
        _add_level(cfg, channel_state, d, level + 1, block)
    j_max = n if n < cfg.p - 1 else cfg.p - 1
    j = 0 if level == 0 else cfg.p // cfg.m
    while j <= j_max:
        old = shift + ((position - j + cfg.p) % cfg.p) * d
        entry = lags + _lag_index(cfg, level, <int>j) * lag_entry
        product = 0.0
        for c in range(d):
            product += value[c] * old[c]
        entry[0] += product
        entry[1] += 1.0
        if cfg.fluctuation_sums:
            for c in range(d):
                entry[2 + c] += old[c]
                entry[2 + d + c] += value[c]
        j += 1
    lev[0] = n + 1


# ------------------------------------------------------------- id -> slot hash table

cdef inline int64_t _hash(int64_t atom_id, int64_t table_size) noexcept nogil:
    return <int64_t>((<uint64_t>atom_id * <uint64_t>0x9E3779B97F4A7C15ULL) >> 17) & (table_size - 1)


cdef int64_t _find(const Correlator* corr, int64_t atom_id) noexcept nogil:
    """Slot of ``atom_id`` or -1."""
    cdef int64_t h
    if corr.table_size == 0:
        return -1
    h = _hash(atom_id, corr.table_size)
    while corr.table[h] != 0:
        if corr.ids[corr.table[h] - 1] == atom_id:
            return corr.table[h] - 1
        h = (h + 1) & (corr.table_size - 1)
    return -1


cdef void _table_insert(Correlator* corr, int64_t atom_id, int64_t slot) noexcept nogil:
    cdef int64_t h = _hash(atom_id, corr.table_size)
    while corr.table[h] != 0:
        h = (h + 1) & (corr.table_size - 1)
    corr.table[h] = slot + 1


cdef void _table_erase(Correlator* corr, int64_t atom_id) noexcept nogil:
    """Remove ``atom_id`` with backward-shift deletion (linear probing, no tombstones)."""
    cdef int64_t mask = corr.table_size - 1
    cdef int64_t h = _hash(atom_id, corr.table_size)
    cdef int64_t next_h, home
    while corr.ids[corr.table[h] - 1] != atom_id:
        h = (h + 1) & mask
    next_h = (h + 1) & mask
    while corr.table[next_h] != 0:
        home = _hash(corr.ids[corr.table[next_h] - 1], corr.table_size)
        # move the entry back if its home is not cyclically inside (h, next_h]
        if ((next_h - home) & mask) >= ((next_h - h) & mask):
            corr.table[h] = corr.table[next_h]
            h = next_h
        next_h = (next_h + 1) & mask
    corr.table[h] = 0


cdef int _reserve(Correlator* corr, int64_t n_atoms) noexcept nogil:
    cdef int64_t capacity, table_size, slot
    cdef double* states
    cdef int64_t* ids
    cdef int64_t* table
    if n_atoms <= corr.capacity:
        return MLNMR_CORR_OK
    capacity = corr.capacity * 2 if corr.capacity > 0 else 64
    while capacity < n_atoms:
        capacity *= 2
    states = <double*>realloc(corr.states, capacity * corr.state_size * sizeof(double))
    if states == NULL:
        return MLNMR_CORR_ERR_MEMORY
    corr.states = states
    ids = <int64_t*>realloc(corr.ids, capacity * sizeof(int64_t))
    if ids == NULL:
        return MLNMR_CORR_ERR_MEMORY
    corr.ids = ids
    table_size = 1
    while table_size < 2 * capacity:
        table_size *= 2
    table = <int64_t*>calloc(table_size, sizeof(int64_t))
    if table == NULL:
        return MLNMR_CORR_ERR_MEMORY
    free(corr.table)
    corr.table = table
    corr.table_size = table_size
    corr.capacity = capacity
    for slot in range(corr.n_atoms):
        _table_insert(corr, corr.ids[slot], slot)
    return MLNMR_CORR_OK


cdef int64_t _new_atom(Correlator* corr, int64_t atom_id, int group) noexcept nogil:
    """Append a zeroed state for ``atom_id``; its slot, or -1 when out of memory."""
    cdef int64_t slot
    cdef double* state
    if _reserve(corr, corr.n_atoms + 1) != MLNMR_CORR_OK:
        return -1
    slot = corr.n_atoms
    state = corr.states + slot * corr.state_size
    memset(state, 0, corr.state_size * sizeof(double))
    state[0] = STATE_MAGIC
    state[1] = <double>atom_id
    state[2] = group
    state[3] = <double>corr.state_size
    corr.ids[slot] = atom_id
    corr.n_atoms += 1
    _table_insert(corr, atom_id, slot)
    return slot


cdef void _remove_slot(Correlator* corr, int64_t slot) noexcept nogil:
    cdef int64_t last = corr.n_atoms - 1
    _table_erase(corr, corr.ids[slot])
    if slot != last:
        _table_erase(corr, corr.ids[last])
        memcpy(corr.states + slot * corr.state_size, corr.states + last * corr.state_size,
               corr.state_size * sizeof(double))
        corr.ids[slot] = corr.ids[last]
        _table_insert(corr, corr.ids[slot], slot)
    corr.n_atoms -= 1


# ------------------------------------------------------------------------- entry points

cdef api int mlnmr_corr_init(Correlator* corr, const CorrConfig* cfg) noexcept nogil:
    """Set up an empty correlator (no atoms) for ``cfg``; free it with mlnmr_corr_free."""
    cdef int status = mlnmr_corr_check_config(cfg)
    if status != MLNMR_CORR_OK:
        return status
    memset(corr, 0, sizeof(Correlator))
    corr.config = cfg[0]
    corr.state_size = mlnmr_corr_atom_state_size(cfg)
    return MLNMR_CORR_OK


cdef api void mlnmr_corr_free(Correlator* corr) noexcept nogil:
    """Release the atom states (the Correlator struct itself belongs to the caller)."""
    free(corr.states)
    free(corr.ids)
    free(corr.table)
    corr.states = NULL
    corr.ids = NULL
    corr.table = NULL
    corr.n_atoms = corr.capacity = corr.table_size = 0


cdef int _compare_int64(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const int64_t*>a)[0]
    cdef int64_t y = (<const int64_t*>b)[0]
    return (x > y) - (x < y)


cdef api int mlnmr_corr_add(Correlator* corr, int channel, int64_t step, int64_t n_atoms,
                            const int64_t* ids, const int32_t* groups, const double* values,
                            int64_t* error_atom) noexcept nogil:
    """Add one sample of ``channel`` taken at MD step ``step`` for ``n_atoms`` atoms.

    ``values`` is [n_atoms][dim[channel]]; ``groups`` the reduction group (element) of
    each atom. An atom seen for the first time gets a new state; afterwards its group must
    not change and its samples must come every ``interval[channel]`` steps. Everything is
    checked before any state changes; on an error ``*error_atom`` is the offending index.
    """
    cdef const CorrConfig* cfg = &corr.config
    cdef int d, c, status
    cdef int64_t i, slot, new_atoms = 0
    cdef double* state
    cdef double* ch
    cdef int64_t offset
    cdef int64_t* sorted_ids
    error_atom[0] = -1
    if channel < 0 or channel >= cfg.n_channels:
        return MLNMR_CORR_ERR_CHANNEL
    if n_atoms < 0 or (n_atoms > 0 and (ids == NULL or groups == NULL or values == NULL)):
        return MLNMR_CORR_ERR_ARGUMENT
    d = cfg.dim[channel]
    offset = _channel_offset(cfg, channel)
    for i in range(n_atoms):
        error_atom[0] = i
        for c in range(d):
            if not isfinite(values[i * d + c]):
                return MLNMR_CORR_ERR_NONFINITE
        if groups[i] < 0 or groups[i] >= cfg.n_groups:
            return MLNMR_CORR_ERR_GROUP
        slot = _find(corr, ids[i])
        if slot < 0:
            new_atoms += 1
            continue
        state = corr.states + slot * corr.state_size
        if <int>state[2] != groups[i]:
            return MLNMR_CORR_ERR_GROUP
        ch = state + offset
        if ch[0] > 0 and <int64_t>ch[1] != step - cfg.interval[channel]:
            return MLNMR_CORR_ERR_STEP
    error_atom[0] = -1
    sorted_ids = <int64_t*>malloc((n_atoms if n_atoms > 0 else 1) * sizeof(int64_t))
    if sorted_ids == NULL:
        return MLNMR_CORR_ERR_MEMORY
    memcpy(sorted_ids, ids, n_atoms * sizeof(int64_t))
    qsort(sorted_ids, n_atoms, sizeof(int64_t), _compare_int64)
    for i in range(1, n_atoms):
        if sorted_ids[i] == sorted_ids[i - 1]:
            free(sorted_ids)
            return MLNMR_CORR_ERR_DUPLICATE_ATOM
    free(sorted_ids)
    status = _reserve(corr, corr.n_atoms + new_atoms)
    if status != MLNMR_CORR_OK:
        return status
    for i in range(n_atoms):
        slot = _find(corr, ids[i])
        if slot < 0:
            slot = _new_atom(corr, ids[i], groups[i])
            if slot < 0:
                return MLNMR_CORR_ERR_MEMORY
        ch = corr.states + slot * corr.state_size + offset
        ch[0] += 1.0
        ch[1] = <double>step
        for c in range(d):
            ch[2 + c] += values[i * d + c]
        _add_level(cfg, ch, d, 0, values + i * d)
    return MLNMR_CORR_OK


cdef api int mlnmr_corr_pack_atom(Correlator* corr, int64_t atom_id, double* buffer, int remove_atom) noexcept nogil:
    """Copy the state of ``atom_id`` into ``buffer`` (state_size doubles); with
    ``remove_atom`` drop it here (the atom migrates to another process)."""
    cdef int64_t slot = _find(corr, atom_id)
    if slot < 0:
        return MLNMR_CORR_ERR_UNKNOWN_ATOM
    memcpy(buffer, corr.states + slot * corr.state_size, corr.state_size * sizeof(double))
    if remove_atom:
        _remove_slot(corr, slot)
    return MLNMR_CORR_OK


cdef api int mlnmr_corr_unpack_atom(Correlator* corr, const double* buffer) noexcept nogil:
    """Insert an atom state packed by mlnmr_corr_pack_atom (same configuration)."""
    cdef int64_t atom_id, slot
    if buffer[0] != STATE_MAGIC or buffer[3] != <double>corr.state_size:
        return MLNMR_CORR_ERR_STATE
    if buffer[2] < 0 or buffer[2] >= corr.config.n_groups:
        return MLNMR_CORR_ERR_GROUP
    atom_id = <int64_t>buffer[1]
    if _find(corr, atom_id) >= 0:
        return MLNMR_CORR_ERR_DUPLICATE_ATOM
    slot = _new_atom(corr, atom_id, <int>buffer[2])
    if slot < 0:
        return MLNMR_CORR_ERR_MEMORY
    memcpy(corr.states + slot * corr.state_size, buffer, corr.state_size * sizeof(double))
    return MLNMR_CORR_OK


cdef api int mlnmr_corr_pack_all(const Correlator* corr, double* buffer) noexcept nogil:
    """All n_atoms states, sorted by atom id, into ``buffer`` [n_atoms][state_size]."""
    cdef int64_t* order = <int64_t*>malloc((corr.n_atoms + 1) * sizeof(int64_t))
    cdef int64_t i
    if order == NULL:
        return MLNMR_CORR_ERR_MEMORY
    memcpy(order, corr.ids, corr.n_atoms * sizeof(int64_t))
    qsort(order, corr.n_atoms, sizeof(int64_t), _compare_int64)
    for i in range(corr.n_atoms):
        memcpy(buffer + i * corr.state_size, corr.states + _find(corr, order[i]) * corr.state_size,
               corr.state_size * sizeof(double))
    free(order)
    return MLNMR_CORR_OK


cdef api int64_t mlnmr_corr_global_state_size() noexcept nogil:
    """Doubles in a packed global state (the configuration)."""
    return 10 + 2 * MLNMR_CORR_MAX_CHANNELS


cdef api int mlnmr_corr_pack_global(const CorrConfig* cfg, double* buffer) noexcept nogil:
    """The configuration as doubles (for restart files): checked again on unpacking."""
    cdef int c
    if mlnmr_corr_check_config(cfg) != MLNMR_CORR_OK:
        return MLNMR_CORR_ERR_ARGUMENT
    memset(buffer, 0, mlnmr_corr_global_state_size() * sizeof(double))
    buffer[0] = GLOBAL_MAGIC
    buffer[1] = MLNMR_CORR_STATE_VERSION
    buffer[2] = cfg.n_channels
    buffer[3] = cfg.dt_fs
    buffer[4] = cfg.p
    buffer[5] = cfg.m
    buffer[6] = cfg.n_levels
    buffer[7] = cfg.n_groups
    buffer[8] = cfg.fluctuation_sums
    buffer[9] = <double>mlnmr_corr_atom_state_size(cfg)
    for c in range(cfg.n_channels):
        buffer[10 + c] = cfg.dim[c]
        buffer[10 + MLNMR_CORR_MAX_CHANNELS + c] = <double>cfg.interval[c]
    return MLNMR_CORR_OK


cdef api int mlnmr_corr_unpack_global(const double* buffer, CorrConfig* cfg) noexcept nogil:
    """Configuration from mlnmr_corr_pack_global; MLNMR_CORR_ERR_STATE if not one."""
    cdef int c
    if buffer[0] != GLOBAL_MAGIC or buffer[1] != MLNMR_CORR_STATE_VERSION:
        return MLNMR_CORR_ERR_STATE
    if buffer[2] < 1 or buffer[2] > MLNMR_CORR_MAX_CHANNELS:
        return MLNMR_CORR_ERR_STATE
    memset(cfg, 0, sizeof(CorrConfig))
    cfg.n_channels = <int>buffer[2]
    cfg.dt_fs = buffer[3]
    cfg.p = <int>buffer[4]
    cfg.m = <int>buffer[5]
    cfg.n_levels = <int>buffer[6]
    cfg.n_groups = <int>buffer[7]
    cfg.fluctuation_sums = <int>buffer[8]
    for c in range(cfg.n_channels):
        cfg.dim[c] = <int>buffer[10 + c]
        cfg.interval[c] = <int64_t>buffer[10 + MLNMR_CORR_MAX_CHANNELS + c]
    if mlnmr_corr_check_config(cfg) != MLNMR_CORR_OK or buffer[9] != <double>mlnmr_corr_atom_state_size(cfg):
        return MLNMR_CORR_ERR_STATE
    return MLNMR_CORR_OK


# -------------------------------------------------------------------------- reduction

cdef struct IdIndex:
    int64_t atom_id
    int64_t index


cdef int _compare_id_index(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const IdIndex*>a).atom_id
    cdef int64_t y = (<const IdIndex*>b).atom_id
    return (x > y) - (x < y)


cdef api int mlnmr_corr_reduce(const CorrConfig* cfg, int64_t n_atoms, const double* states, int n_blocks,
                               int fluctuation, double* sums, double* counts) noexcept nogil:
    """Sum per-atom lag sums into sums/counts [n_groups][n_channels][n_blocks][n_lags].

    ``states`` holds n_atoms packed states in any order (e.g. gathered from all
    processes). Atoms are taken in atom-id order; within a group of n atoms the r-th goes
    to block r·n_blocks/n. ``fluctuation`` = 1 gives Σ(x(t0+s) − x̄)·(x(t0) − x̄) with x̄
    the atom's mean over all its samples (needs fluctuation_sums).
    """
    cdef int64_t state_size = mlnmr_corr_atom_state_size(cfg)
    cdef int64_t n_lag = _n_lags(cfg)
    cdef int64_t i, li, out, offset, lag_entry, lag_start
    cdef int64_t* in_group
    cdef int64_t* rank_in_group
    cdef IdIndex* order
    cdef const double* state
    cdef const double* ch
    cdef const double* entry
    cdef int g, c, b, d, k
    cdef double mean[9]
    cdef double value, mean_sq, n_samples
    if state_size < 0 or n_blocks < 1 or n_atoms < 0:
        return MLNMR_CORR_ERR_ARGUMENT
    if fluctuation and not cfg.fluctuation_sums:
        return MLNMR_CORR_ERR_ARGUMENT
    memset(sums, 0, cfg.n_groups * cfg.n_channels * n_blocks * n_lag * sizeof(double))
    memset(counts, 0, cfg.n_groups * cfg.n_channels * n_blocks * n_lag * sizeof(double))
    order = <IdIndex*>malloc((n_atoms + 1) * sizeof(IdIndex))
    in_group = <int64_t*>calloc(cfg.n_groups, sizeof(int64_t))
    rank_in_group = <int64_t*>calloc(cfg.n_groups, sizeof(int64_t))
    if order == NULL or in_group == NULL or rank_in_group == NULL:
        free(order)
        free(in_group)
        free(rank_in_group)
        return MLNMR_CORR_ERR_MEMORY
    for i in range(n_atoms):
        state = states + i * state_size
        if state[0] != STATE_MAGIC or state[3] != <double>state_size:
            free(order)
            free(in_group)
            free(rank_in_group)
            return MLNMR_CORR_ERR_STATE
        g = <int>state[2]
        if g < 0 or g >= cfg.n_groups:
            free(order)
            free(in_group)
            free(rank_in_group)
            return MLNMR_CORR_ERR_GROUP
        in_group[g] += 1
        order[i].atom_id = <int64_t>state[1]
        order[i].index = i
    qsort(order, n_atoms, sizeof(IdIndex), _compare_id_index)
    for i in range(1, n_atoms):
        if order[i].atom_id == order[i - 1].atom_id:
            free(order)
            free(in_group)
            free(rank_in_group)
            return MLNMR_CORR_ERR_DUPLICATE_ATOM
    for i in range(n_atoms):
        state = states + order[i].index * state_size
        g = <int>state[2]
        b = <int>((rank_in_group[g] * n_blocks) // in_group[g])
        rank_in_group[g] += 1
        offset = HEADER
        for c in range(cfg.n_channels):
            d = cfg.dim[c]
            ch = state + offset
            offset += _channel_size(cfg, d)
            n_samples = ch[0]
            if n_samples == 0:
                continue
            lag_entry = _lag_entry(cfg, d)
            lag_start = 2 + d + cfg.n_levels * _level_size(cfg, d)
            mean_sq = 0.0
            if fluctuation:
                for k in range(d):
                    mean[k] = ch[2 + k] / n_samples
                    mean_sq += mean[k] * mean[k]
            out = ((<int64_t>g * cfg.n_channels + c) * n_blocks + b) * n_lag
            for li in range(n_lag):
                entry = ch + lag_start + li * lag_entry
                if entry[1] == 0:
                    continue
                value = entry[0]
                if fluctuation:
                    for k in range(d):
                        value -= mean[k] * (entry[2 + k] + entry[2 + d + k])
                    value += entry[1] * mean_sq
                sums[out + li] += value
                counts[out + li] += entry[1]
    free(order)
    free(in_group)
    free(rank_in_group)
    return MLNMR_CORR_OK


cdef api int mlnmr_corr_reduce_local(const Correlator* corr, int n_blocks, int fluctuation,
                                     double* sums, double* counts) noexcept nogil:
    """mlnmr_corr_reduce over the atoms held by ``corr``."""
    return mlnmr_corr_reduce(&corr.config, corr.n_atoms, corr.states, n_blocks, fluctuation, sums, counts)


cdef api int mlnmr_corr_normalised(int n_blocks, int64_t n_lag, const double* sums, const double* counts,
                                   double* g) noexcept nogil:
    """G(s) = [S(s)/N(s)] / [S(0)/N(0)] from the block sums of one group and channel
    ([n_blocks][n_lag]; blocks added in order); NaN where N(s) = 0 or S(0) = 0."""
    cdef int64_t li
    cdef int b
    cdef double s, n, s0 = 0.0, n0 = 0.0
    for b in range(n_blocks):
        s0 += sums[b * n_lag]
        n0 += counts[b * n_lag]
    for li in range(n_lag):
        s = 0.0
        n = 0.0
        for b in range(n_blocks):
            s += sums[b * n_lag + li]
            n += counts[b * n_lag + li]
        g[li] = (s / n) / (s0 / n0) if (n > 0 and n0 > 0 and s0 != 0) else NAN
    return MLNMR_CORR_OK


cdef int _compare_double(const void* a, const void* b) noexcept nogil:
    cdef double x = (<const double*>a)[0]
    cdef double y = (<const double*>b)[0]
    return (x > y) - (x < y)


cdef double _window_mean(int64_t n_lag, const double* lags_fs, const double* g, double start,
                         double end) noexcept nogil:
    """Time-weighted (trapezoid) mean of finite G over lags in [start, end]; NaN if none."""
    cdef int64_t li, previous = -1
    cdef double area = 0.0, width = 0.0
    for li in range(n_lag):
        if not (lags_fs[li] >= start and lags_fs[li] <= end and isfinite(g[li])):
            continue
        if previous >= 0:
            area += 0.5 * (g[li] + g[previous]) * (lags_fs[li] - lags_fs[previous])
            width += lags_fs[li] - lags_fs[previous]
        previous = li
    if previous < 0:
        return NAN
    if width == 0:
        return g[previous]
    return area / width


cdef api int mlnmr_corr_plateau(int64_t n_lag, const double* lags_fs, int n_blocks, const double* sums,
                                const double* counts, double half_span_fs, double window_start_fs,
                                double window_end_fs, double* result) noexcept nogil:
    """Plateau P of G (one group and channel; sums/counts [n_blocks][n_lag], lags increasing).

    Only lags 0 < s <= ``half_span_fs`` (half the sampled time span) are used. Automatic
    window (``window_start_fs`` < 0): G_tail = median of G over [half_span/2, half_span];
    τ½ = first lag with G <= (1 + G_tail)/2; window [8 τ½, half_span]. Otherwise the given
    window (``window_end_fs`` <= 0 means half_span). P = trapezoid time average of G over
    the window; its uncertainty = standard error of the same average over the blocks.
    ``result`` = [P, P_err (NaN for one block), window start, window end] (fs).
    """
    cdef double* g = <double*>malloc((2 * n_lag + 1) * sizeof(double))
    cdef double* tail = g + n_lag
    cdef int64_t li, n_tail = 0
    cdef double level, half_time = -1.0, start, end, p_mean, spread, p_block
    cdef int b
    if g == NULL:
        return MLNMR_CORR_ERR_MEMORY
    if n_lag < 2 or n_blocks < 1 or not (half_span_fs > 0):
        free(g)
        return MLNMR_CORR_ERR_ARGUMENT
    mlnmr_corr_normalised(n_blocks, n_lag, sums, counts, g)
    for li in range(n_lag):
        if lags_fs[li] > half_span_fs:
            g[li] = NAN
    if window_start_fs < 0:
        for li in range(n_lag):
            if lags_fs[li] >= 0.5 * half_span_fs and isfinite(g[li]):
                tail[n_tail] = g[li]
                n_tail += 1
        if n_tail == 0:
            free(g)
            return MLNMR_CORR_ERR_NO_PLATEAU
        qsort(tail, n_tail, sizeof(double), _compare_double)
        level = 0.5 * (1.0 + (tail[n_tail // 2] if n_tail % 2 else 0.5 * (tail[n_tail // 2 - 1] + tail[n_tail // 2])))
        for li in range(n_lag):
            if lags_fs[li] > 0 and isfinite(g[li]) and g[li] <= level:
                half_time = lags_fs[li]
                break
        if half_time < 0:
            free(g)
            return MLNMR_CORR_ERR_NO_PLATEAU
        start = 8.0 * half_time
        end = half_span_fs
    else:
        start = window_start_fs
        end = window_end_fs if window_end_fs > 0 else half_span_fs
    if not (end > start):
        free(g)
        return MLNMR_CORR_ERR_NO_PLATEAU
    result[0] = _window_mean(n_lag, lags_fs, g, start, end)
    result[2] = start
    result[3] = end
    if result[0] != result[0]:
        free(g)
        return MLNMR_CORR_ERR_NO_PLATEAU
    result[1] = NAN
    if n_blocks > 1:
        p_mean = 0.0
        spread = 0.0
        for b in range(n_blocks):
            mlnmr_corr_normalised(1, n_lag, sums + b * n_lag, counts + b * n_lag, g)
            p_block = _window_mean(n_lag, lags_fs, g, start, end)
            p_mean += p_block
            spread += p_block * p_block
        p_mean /= n_blocks
        spread = spread / n_blocks - p_mean * p_mean
        result[1] = sqrt(spread / (n_blocks - 1)) if spread > 0 else 0.0
    free(g)
    return MLNMR_CORR_OK


cdef api int mlnmr_corr_write_result(const char* path, const char* header_json, int n_groups,
                                     const char* const* group_names, int n_channels,
                                     const char* const* channel_names, int64_t n_lag, const double* lags_fs,
                                     const double* g, const double* sums, const double* counts) noexcept nogil:
    """Write the result file atomically (``path``.tmp, then rename).

    Line 1: ``# `` + ``header_json`` (one line of JSON); line 2: the CSV header
    ``group,channel,lag_fs,g,sum,count``; then one row per group, channel and lag with
    count > 0, numbers with 17 significant digits. ``lags_fs`` is [n_channels][n_lag];
    ``g``, ``sums``, ``counts`` are [n_groups][n_channels][n_lag] (blocks already added).
    """
    cdef char tmp_path[4096]
    cdef size_t length = strlen(path)
    cdef FILE* stream
    cdef int grp, c, failed = 0
    cdef int64_t li, at
    if length + 5 > 4096:
        return MLNMR_CORR_ERR_ARGUMENT
    memcpy(tmp_path, path, length)
    memcpy(tmp_path + length, b".tmp", 5)
    stream = fopen(tmp_path, "w")
    if stream == NULL:
        return MLNMR_CORR_ERR_IO
    failed |= fprintf(stream, "# %s\ngroup,channel,lag_fs,g,sum,count\n", header_json) < 0
    for grp in range(n_groups):
        for c in range(n_channels):
            for li in range(n_lag):
                at = (<int64_t>grp * n_channels + c) * n_lag + li
                if counts[at] <= 0:
                    continue
                failed |= fprintf(stream, "%s,%s,%.17g,%.17g,%.17g,%.17g\n", group_names[grp], channel_names[c],
                                  lags_fs[c * n_lag + li], g[at], sums[at], counts[at]) < 0
    failed |= fflush(stream) != 0
    failed |= fclose(stream) != 0
    if failed or rename(tmp_path, path) != 0:
        remove(tmp_path)
        return MLNMR_CORR_ERR_IO
    return MLNMR_CORR_OK


# ------------------------------------------------------------------------ Python side

_MESSAGES = {
    MLNMR_CORR_ERR_ARGUMENT: "invalid argument or configuration",
    MLNMR_CORR_ERR_MEMORY: "out of memory",
    MLNMR_CORR_ERR_CHANNEL: "channel index out of range",
    MLNMR_CORR_ERR_GROUP: "group index out of range, or an atom's group changed",
    MLNMR_CORR_ERR_STEP: "sample step is not the atom's previous step plus the channel's interval",
    MLNMR_CORR_ERR_NONFINITE: "non-finite value (NaN or inf)",
    MLNMR_CORR_ERR_UNKNOWN_ATOM: "no state for this atom id",
    MLNMR_CORR_ERR_DUPLICATE_ATOM: "atom id given twice or already present",
    MLNMR_CORR_ERR_STATE: "packed state does not belong to this correlator configuration",
    MLNMR_CORR_ERR_NO_PLATEAU: "no lags inside the plateau window (trajectory too short?)",
    MLNMR_CORR_ERR_IO: "result file could not be written",
}


class CorrelatorError(ValueError):
    """An error status of the correlator core; ``status`` holds the C code."""

    def __init__(self, status: int, context: str = "") -> None:
        self.status = status
        text = _MESSAGES.get(status, f"status {status}")
        super().__init__(f"{context}: {text}" if context else text)


def _check(int status, str context=""):
    if status == MLNMR_CORR_ERR_MEMORY:
        raise MemoryError(f"{context}: out of memory")
    if status != MLNMR_CORR_OK:
        raise CorrelatorError(status, context)


cdef CorrConfig _make_config(dims, intervals, double dt_fs, int p, int m, int n_levels, int n_groups,
                             bint fluctuation_sums) except *:
    cdef CorrConfig cfg
    cdef int c
    memset(&cfg, 0, sizeof(CorrConfig))
    dims = [int(x) for x in dims]
    intervals = [int(x) for x in intervals]
    if len(dims) != len(intervals) or not 1 <= len(dims) <= MLNMR_CORR_MAX_CHANNELS:
        raise ValueError(f"need 1..{MLNMR_CORR_MAX_CHANNELS} channels with one interval each, "
                         f"got dims {dims} and intervals {intervals}")
    cfg.n_channels = len(dims)
    for c in range(cfg.n_channels):
        cfg.dim[c] = dims[c]
        cfg.interval[c] = intervals[c]
    cfg.dt_fs = dt_fs
    cfg.p = p
    cfg.m = m
    cfg.n_levels = n_levels
    cfg.n_groups = n_groups
    cfg.fluctuation_sums = 1 if fluctuation_sums else 0
    if mlnmr_corr_check_config(&cfg) != MLNMR_CORR_OK:
        raise ValueError(
            f"invalid correlator configuration: dims {dims} (each 1..{MLNMR_CORR_MAX_DIM}), intervals "
            f"{intervals} (>= 1 step), dt_fs={dt_fs} (> 0), p={p}, m={m} (m >= 2, p a multiple of m), "
            f"n_levels={n_levels} (1..60), n_groups={n_groups} (>= 1)")
    return cfg


cdef class StreamingCorrelator:
    """Multiple-tau correlators for every atom (by id) and channel; see the module docstring.

    Parameters
    ----------
    dims : components per channel, e.g. ``(5, 1)`` for the EFG λ = 2 components and σiso
    intervals : MD steps between samples of each channel
    dt_fs : MD time step, fs
    p, m, n_levels : level length, averaging factor, number of levels
    n_groups : reduction groups (elements)
    fluctuation_sums : keep per-lag Σx(t0), Σx(t0+s) so the fluctuation form is available
    """
    cdef Correlator corr

    def __init__(self, dims, intervals, double dt_fs, int p=16, int m=2, int n_levels=10, int n_groups=1,
                 bint fluctuation_sums=True):
        cdef CorrConfig cfg = _make_config(dims, intervals, dt_fs, p, m, n_levels, n_groups, fluctuation_sums)
        mlnmr_corr_free(&self.corr)
        _check(mlnmr_corr_init(&self.corr, &cfg), "StreamingCorrelator")

    def __dealloc__(self):
        mlnmr_corr_free(&self.corr)

    @classmethod
    def from_global_state(cls, buffer):
        """A new, empty correlator with the configuration packed by :meth:`pack_global`."""
        cdef CorrConfig cfg
        cdef cnp.ndarray[cnp.float64_t, ndim=1] data = np.ascontiguousarray(buffer, dtype=np.float64)
        if data.shape[0] != mlnmr_corr_global_state_size():
            raise CorrelatorError(MLNMR_CORR_ERR_STATE, f"global state of length {data.shape[0]}")
        _check(mlnmr_corr_unpack_global(&data[0], &cfg), "from_global_state")
        return cls([cfg.dim[c] for c in range(cfg.n_channels)], [cfg.interval[c] for c in range(cfg.n_channels)],
                   cfg.dt_fs, cfg.p, cfg.m, cfg.n_levels, cfg.n_groups, bool(cfg.fluctuation_sums))

    @property
    def config(self) -> dict:
        cdef CorrConfig* cfg = &self.corr.config
        return {"dims": [cfg.dim[c] for c in range(cfg.n_channels)],
                "intervals": [int(cfg.interval[c]) for c in range(cfg.n_channels)],
                "dt_fs": cfg.dt_fs, "p": cfg.p, "m": cfg.m, "n_levels": cfg.n_levels, "n_groups": cfg.n_groups,
                "fluctuation_sums": bool(cfg.fluctuation_sums)}

    @property
    def n_channels(self) -> int:
        return self.corr.config.n_channels

    @property
    def n_groups(self) -> int:
        return self.corr.config.n_groups

    @property
    def state_size(self) -> int:
        """Doubles per atom (formula in the module docstring)."""
        return self.corr.state_size

    @property
    def n_atoms(self) -> int:
        return self.corr.n_atoms

    @property
    def n_lags(self) -> int:
        return mlnmr_corr_n_lags(&self.corr.config)

    @property
    def allocated_bytes(self) -> int:
        """Bytes held: states, ids and the id table at the current capacity."""
        return self.corr.capacity * (self.corr.state_size + 1) * 8 + self.corr.table_size * 8

    def lags_fs(self, int channel) -> np.ndarray:
        """Lag times (fs) of the lag entries of ``channel``."""
        out = np.empty(self.n_lags)
        cdef double[::1] view = out
        _check(mlnmr_corr_lags_fs(&self.corr.config, channel, &view[0]), f"lags_fs(channel={channel})")
        return out

    def add(self, int channel, int64_t step, ids, groups, values) -> None:
        """One sample of ``channel`` at MD step ``step``: ``values`` (n, dim) for atoms ``ids``."""
        if not 0 <= channel < self.corr.config.n_channels:
            raise CorrelatorError(MLNMR_CORR_ERR_CHANNEL, f"add(channel={channel}) with {self.n_channels} channels")
        cdef int d = self.corr.config.dim[channel]
        id_array = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        group_array = np.ascontiguousarray(groups, dtype=np.int32).reshape(-1)
        value_array = np.ascontiguousarray(values, dtype=np.float64)
        cdef int64_t n = id_array.shape[0]
        if group_array.shape[0] != n or value_array.size != n * d:
            raise ValueError(f"add: {n} ids, {group_array.shape[0]} groups and values of shape "
                             f"{value_array.shape} (channel {channel} has {d} components)")
        if n == 0:
            return
        cdef int64_t[::1] id_view = id_array
        cdef int32_t[::1] group_view = group_array
        cdef double[::1] value_view = value_array.reshape(-1)
        cdef int64_t error_atom = -1
        cdef int status
        with nogil:
            status = mlnmr_corr_add(&self.corr, channel, step, n, &id_view[0], &group_view[0], &value_view[0],
                                    &error_atom)
        if status != MLNMR_CORR_OK:
            where = f" (atom id {id_array[error_atom]})" if error_atom >= 0 else ""
            _check(status, f"add(channel={channel}, step={step}){where}")

    def pack_atom(self, int64_t atom_id, bint remove=False) -> np.ndarray:
        out = np.empty(self.state_size)
        cdef double[::1] view = out
        _check(mlnmr_corr_pack_atom(&self.corr, atom_id, &view[0], remove), f"pack_atom({atom_id})")
        return out

    def unpack_atom(self, buffer) -> None:
        cdef cnp.ndarray[cnp.float64_t, ndim=1] data = np.ascontiguousarray(buffer, dtype=np.float64)
        if data.shape[0] != self.state_size:
            raise CorrelatorError(MLNMR_CORR_ERR_STATE, f"atom state of length {data.shape[0]} "
                                                        f"(expected {self.state_size})")
        _check(mlnmr_corr_unpack_atom(&self.corr, &data[0]), "unpack_atom")

    def pack_all(self) -> np.ndarray:
        """(n_atoms, state_size) states sorted by atom id."""
        out = np.empty((self.n_atoms, self.state_size))
        cdef double[:, ::1] view = out
        if self.n_atoms:
            _check(mlnmr_corr_pack_all(&self.corr, &view[0, 0]), "pack_all")
        return out

    def pack_global(self) -> np.ndarray:
        out = np.empty(mlnmr_corr_global_state_size())
        cdef double[::1] view = out
        _check(mlnmr_corr_pack_global(&self.corr.config, &view[0]), "pack_global")
        return out

    def reduce(self, int n_blocks=1, bint fluctuation=False, states=None):
        """Lag sums and counts (n_groups, n_channels, n_blocks, n_lags) over this correlator's
        atoms, or over packed ``states`` (n, state_size) of the same configuration."""
        cdef CorrConfig* cfg = &self.corr.config
        shape = (cfg.n_groups, cfg.n_channels, n_blocks, self.n_lags) if n_blocks >= 1 else (0,)
        sums, counts = np.zeros(shape), np.zeros(shape)
        cdef double[::1] s_view = sums.reshape(-1)
        cdef double[::1] n_view = counts.reshape(-1)
        cdef cnp.ndarray[cnp.float64_t, ndim=2] data
        cdef int status
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        if states is None:
            with nogil:
                status = mlnmr_corr_reduce_local(&self.corr, n_blocks, fluctuation, &s_view[0], &n_view[0])
        else:
            data = np.ascontiguousarray(states, dtype=np.float64).reshape(-1, self.state_size)
            with nogil:
                status = mlnmr_corr_reduce(cfg, data.shape[0], &data[0, 0] if data.shape[0] else NULL,
                                           n_blocks, fluctuation, &s_view[0], &n_view[0])
        _check(status, "reduce" + (" (fluctuation form needs fluctuation_sums=True)" if fluctuation else ""))
        return sums, counts


def normalised_correlation(sums, counts) -> np.ndarray:
    """G(s) from block sums (n_blocks, n_lag) of one group and channel (core's definition)."""
    cdef cnp.ndarray[cnp.float64_t, ndim=2] s = np.ascontiguousarray(np.atleast_2d(sums), dtype=np.float64)
    cdef cnp.ndarray[cnp.float64_t, ndim=2] n = np.ascontiguousarray(np.atleast_2d(counts), dtype=np.float64)
    if s.shape[0] != n.shape[0] or s.shape[1] != n.shape[1] or s.shape[1] == 0:
        raise ValueError(f"sums {s.shape[0]}x{s.shape[1]} and counts {n.shape[0]}x{n.shape[1]} must match")
    out = np.empty(s.shape[1])
    cdef double[::1] view = out
    mlnmr_corr_normalised(s.shape[0], s.shape[1], &s[0, 0], &n[0, 0], &view[0])
    return out


def plateau(lags_fs, sums, counts, double half_span_fs, window_fs=None) -> dict:
    """Plateau of G for one group and channel (rule in :c:func:`mlnmr_corr_plateau`).

    ``window_fs`` = (start, end) overrides the automatic window (end None: half span).
    Returns ``{"P", "P_err", "window_fs"}``.
    """
    cdef cnp.ndarray[cnp.float64_t, ndim=1] lags = np.ascontiguousarray(lags_fs, dtype=np.float64)
    cdef cnp.ndarray[cnp.float64_t, ndim=2] s = np.ascontiguousarray(np.atleast_2d(sums), dtype=np.float64)
    cdef cnp.ndarray[cnp.float64_t, ndim=2] n = np.ascontiguousarray(np.atleast_2d(counts), dtype=np.float64)
    cdef double result[4]
    cdef double start = -1.0, end = -1.0
    if s.shape[1] != lags.shape[0] or n.shape[1] != lags.shape[0] or s.shape[0] != n.shape[0]:
        raise ValueError(f"plateau: {lags.shape[0]} lags but sums {s.shape[0]}x{s.shape[1]}, "
                         f"counts {n.shape[0]}x{n.shape[1]}")
    if lags.shape[0] > 1 and np.any(np.diff(lags) < 0):
        raise ValueError("plateau: lags must be increasing")
    if window_fs is not None:
        start = float(window_fs[0])
        end = -1.0 if window_fs[1] is None else float(window_fs[1])
        if start < 0 or (end > 0 and end <= start):
            raise ValueError(f"plateau window must be 0 <= start < end (fs), got {window_fs}")
    _check(mlnmr_corr_plateau(lags.shape[0], &lags[0], s.shape[0], &s[0, 0], &n[0, 0], half_span_fs, start, end,
                              result), f"plateau (half span {half_span_fs:g} fs, window {window_fs})")
    return {"P": result[0], "P_err": result[1], "window_fs": (result[2], result[3])}


def write_result(path, str header_json, group_names, channel_names, lags_fs, g, sums, counts) -> None:
    """Write the correlation result file atomically (format in mlnmr_corr_write_result)."""
    groups = [str(x).encode() for x in group_names]
    channels = [str(x).encode() for x in channel_names]
    if "\n" in header_json:
        raise ValueError("header JSON must be one line")
    lag_object = np.ascontiguousarray(lags_fs, dtype=np.float64)
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (g, sums, counts)]
    if lag_object.ndim != 2:
        raise ValueError(f"write_result: lags must be (n_channels, n_lag), got shape {lag_object.shape}")
    shape = (len(groups), len(channels), lag_object.shape[1])
    if lag_object.shape[0] != len(channels) or any(a.shape != shape for a in arrays):
        raise ValueError(f"write_result: lags {lag_object.shape} and arrays {[a.shape for a in arrays]} "
                         f"do not match {len(groups)} groups x {len(channels)} channels")
    cdef double[:, ::1] lag_array = lag_object
    cdef double[:, :, ::1] g_a = arrays[0]
    cdef double[:, :, ::1] s_a = arrays[1]
    cdef double[:, :, ::1] n_a = arrays[2]
    cdef const char** group_ptrs = <const char**>malloc((len(groups) + 1) * sizeof(char*))
    cdef const char** channel_ptrs = <const char**>malloc((len(channels) + 1) * sizeof(char*))
    cdef int status, k
    for k in range(len(groups)):
        group_ptrs[k] = groups[k]
    for k in range(len(channels)):
        channel_ptrs[k] = channels[k]
    path_bytes = str(path).encode()
    header_bytes = header_json.encode()
    status = mlnmr_corr_write_result(path_bytes, header_bytes, len(groups), group_ptrs, len(channels),
                                     channel_ptrs, lag_array.shape[1], &lag_array[0, 0], &g_a[0, 0, 0],
                                     &s_a[0, 0, 0], &n_a[0, 0, 0])
    free(group_ptrs)
    free(channel_ptrs)
    _check(status, f"write_result({path})")
