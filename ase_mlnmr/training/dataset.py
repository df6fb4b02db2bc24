"""DFT NMR tensor training data read through ASE.

Supported inputs (many files and glob patterns at once):

* magres files (CASTEP, QE-GIPAW): ``atoms.arrays['ms']`` (shielding, ppm) and
  ``atoms.arrays['efg']`` (atomic units), with the units stated in the file
  (``atoms.info['magres_units']``). The units a file states always win.
* extended XYZ (and other multi-frame ASE formats): per-atom arrays ``ms`` / ``efg`` of
  9 floats (row-major 3x3) and optional boolean masks ``ms_mask`` / ``efg_mask``
  (``True`` where the atom carries a tensor). Such files do not state units, so the
  caller MUST give them (``ms_units='ppm'``, ``efg_units='au'`` or ``'V/A^2'``).

Internal units: shielding in ppm, EFG in atomic units
(1 a.u. = E_h / (e a0^2) = 9.7173624292e21 V/m^2 = 97.173624292 V/Angstrom^2, CODATA 2018).

Sign: the dataset always holds the shielding σ. Files that hold −σ instead (VASP's
LCHIMAG output: its "chemical shift" tensor is δ_ij = ∂B^ind_i/∂B^ext_j = −σ_ij, printed
without the core contribution and unreferenced, so δiso values rise as σ falls — for
27Al, AlO4 sites above AlO6 sites, as measured shifts) must be declared when reading:
``ms_convention='shift'`` negates them. Nothing guesses the sign; see
``docs/conventions.md`` for how to recognise such data.

The shielding tensor is symmetrised, sigma -> (sigma + sigma^T)/2, unless
``symmetrise_shielding=False`` (then the antisymmetric part sigma(1) is kept). EFG tensors
are stored as read.

Per structure and property the dataset holds an (n_atoms, 3, 3) array, NaN-free (atoms
without a tensor hold zeros) and a boolean mask; an atom counts as carrying a tensor when
the file provides one (mask True / not ``None``) and all nine numbers are finite.
"""
from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms

__all__ = [
    "EFG_AU_IN_V_PER_A2",
    "TENSOR_PROPERTIES",
    "AtomSelection",
    "TensorDataset",
    "read_tensor_dataset",
    "expand_paths",
    "MS_CONVENTIONS",
    "efg_to_au",
    "normalise_efg_units",
    "normalise_ms_units",
    "sha256_file",
]

from ..descriptors import atomic_number_of
from ..nmr.efg import EFG_AU_IN_V_PER_A2, convert_efg, normalise_efg_units

#: Tensor properties understood by the reader.
TENSOR_PROPERTIES = ("ms", "efg")

#: Internal units.
INTERNAL_UNITS = {"ms": "ppm", "efg": "au"}

#: How the ``ms`` numbers of a file relate to the shielding σ (see :func:`read_tensor_dataset`).
MS_CONVENTIONS = {
    "shielding": "σ itself (magres files, CASTEP, QE-GIPAW)",
    "shift": "−σ up to a constant per element (VASP LCHIMAG 'chemical shift' tensors, core excluded)",
}

_MAGRES_SUFFIXES = (".magres",)


def normalise_ms_units(units: str) -> str:
    """Canonical shielding unit name; only ``'ppm'`` is accepted."""
    key = str(units).strip().lower()
    if key != "ppm":
        raise ValueError(f"unknown shielding units {units!r}: only 'ppm' is supported")
    return "ppm"


def efg_to_au(values: np.ndarray, units: str) -> np.ndarray:
    """Convert EFG values from ``units`` to atomic units (V_au = V / 97.1736 for V/A^2)."""
    return np.asarray(convert_efg(values, units, "au"), dtype=float)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def expand_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand file names and glob patterns (``*``, ``?``, ``[``, ``**``) in order given.

    Each pattern's matches are sorted; a pattern matching nothing or a missing file
    raises FileNotFoundError. Duplicates are kept once (first occurrence).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    seen: set[Path] = set()
    for item in paths:
        text = os.fspath(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            matches = [m for m in matches if os.path.isfile(m)]
            if not matches:
                raise FileNotFoundError(f"no file matches the pattern {text!r}")
        else:
            if not os.path.isfile(text):
                raise FileNotFoundError(f"tensor data file not found: {text!r}")
            matches = [text]
        for match in matches:
            resolved = Path(match).resolve()
            if resolved not in seen:
                seen.add(resolved)
                out.append(Path(match))
    return out


@dataclass
class AtomSelection:
    """Atoms carrying one tensor property, flattened over structures.

    ``tensors[k]`` is the tensor (ppm or a.u.) of atom ``atom_index[k]`` in structure
    ``structure_index[k]``; ``groups`` are per-atom labels for grouped cross-validation
    (the structure index unless structure-level groups were given).
    """

    prop: str
    units: str
    structure_index: np.ndarray
    atom_index: np.ndarray
    numbers: np.ndarray
    tensors: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return int(self.structure_index.shape[0])


@dataclass
class TensorDataset:
    """Structures with per-atom DFT tensors.

    Attributes
    ----------
    structures:
        ``ase.Atoms`` objects (the tensor and mask arrays and any calculator removed:
        the tensors live here, in internal units).
    tensors:
        ``{prop: [array (n_atoms, 3, 3)]}`` per structure, NaN-free (zeros where masked).
    masks:
        ``{prop: [bool array (n_atoms,)]}`` True where the atom carries a tensor.
    sources:
        File name each structure came from; ``frames`` its position among the frames read
        from that file (its frame index when all frames are read).
    units:
        ``{'ms': 'ppm', 'efg': 'au'}``; ``input_units`` the units of each source file.
    symmetrised_shielding:
        Whether sigma was replaced by (sigma + sigma^T)/2.
    ms_convention:
        How the files' ``ms`` numbers were declared (:data:`MS_CONVENTIONS`); the
        tensors held are σ either way.
    """

    structures: list[Atoms]
    tensors: dict[str, list[np.ndarray]]
    masks: dict[str, list[np.ndarray]]
    sources: list[str]
    frames: list[int]
    units: dict[str, str] = field(default_factory=lambda: dict(INTERNAL_UNITS))
    input_units: dict[str, dict[str, str]] = field(default_factory=dict)
    symmetrised_shielding: bool = True
    ms_convention: str = "shielding"

    def __post_init__(self) -> None:
        n = len(self.structures)
        if len(self.sources) != n or len(self.frames) != n:
            raise ValueError("sources/frames must have one entry per structure")
        for prop in TENSOR_PROPERTIES:
            self.tensors.setdefault(prop, [np.zeros((len(a), 3, 3)) for a in self.structures])
            self.masks.setdefault(prop, [np.zeros(len(a), dtype=bool) for a in self.structures])
            if len(self.tensors[prop]) != n or len(self.masks[prop]) != n:
                raise ValueError(f"{prop}: need one tensor array and mask per structure")
            for atoms, t, m in zip(self.structures, self.tensors[prop], self.masks[prop]):
                if t.shape != (len(atoms), 3, 3) or m.shape != (len(atoms),):
                    raise ValueError(f"{prop}: tensor/mask shapes do not match the structure")

    def __len__(self) -> int:
        return len(self.structures)

    @property
    def properties(self) -> tuple[str, ...]:
        """Properties with at least one atom carrying a tensor."""
        return tuple(p for p in TENSOR_PROPERTIES if self.n_tensors(p) > 0)

    def n_tensors(self, prop: str) -> int:
        """Number of atoms carrying ``prop`` over all structures."""
        self._check_prop(prop)
        return int(sum(int(m.sum()) for m in self.masks[prop]))

    def _check_prop(self, prop: str) -> None:
        if prop not in TENSOR_PROPERTIES:
            raise ValueError(f"unknown tensor property {prop!r}; expected one of {TENSOR_PROPERTIES}")

    def select(
        self,
        prop: str,
        element: str | int | None = None,
        structure_groups: Sequence[int] | np.ndarray | None = None,
    ) -> AtomSelection:
        """All atoms (optionally of one element) carrying ``prop``, flattened.

        ``structure_groups`` (one label per structure, e.g. polymorph families) replaces
        the default per-atom group label, the structure index.
        """
        self._check_prop(prop)
        z = atomic_number_of(element) if element is not None else None
        s_idx, a_idx, nums, tens = [], [], [], []
        for i, atoms in enumerate(self.structures):
            keep = self.masks[prop][i].copy()
            if z is not None:
                keep &= atoms.numbers == z
            where = np.flatnonzero(keep)
            s_idx.append(np.full(where.size, i, dtype=np.int64))
            a_idx.append(where.astype(np.int64))
            nums.append(atoms.numbers[where].astype(np.int64))
            tens.append(self.tensors[prop][i][where])
        structure_index = np.concatenate(s_idx) if s_idx else np.zeros(0, dtype=np.int64)
        return AtomSelection(
            prop=prop,
            units=self.units[prop],
            structure_index=structure_index,
            atom_index=np.concatenate(a_idx) if a_idx else np.zeros(0, dtype=np.int64),
            numbers=np.concatenate(nums) if nums else np.zeros(0, dtype=np.int64),
            tensors=np.concatenate(tens) if tens else np.zeros((0, 3, 3)),
            groups=self._map_groups(structure_index, structure_groups),
        )

    def group_labels(
        self,
        prop: str,
        element: str | int | None = None,
        structure_groups: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Per-atom group labels (structure index, or ``structure_groups[structure]``)
        in the order of :meth:`select`, for grouped cross-validation."""
        return self.select(prop, element, structure_groups).groups

    def _map_groups(
        self, structure_index: np.ndarray, structure_groups: Sequence[int] | np.ndarray | None
    ) -> np.ndarray:
        if structure_groups is None:
            return structure_index.copy()
        labels = np.asarray(structure_groups)
        if labels.shape != (len(self),):
            raise ValueError(
                f"structure_groups needs one label per structure ({len(self)}), got {labels.shape}"
            )
        return labels[structure_index]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "TensorDataset":
        """New dataset with the structures ``indices`` (shared arrays are copied)."""
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64).ravel()]
        return TensorDataset(
            structures=[self.structures[i].copy() for i in idx],
            tensors={p: [self.tensors[p][i].copy() for i in idx] for p in TENSOR_PROPERTIES},
            masks={p: [self.masks[p][i].copy() for i in idx] for p in TENSOR_PROPERTIES},
            sources=[self.sources[i] for i in idx],
            frames=[self.frames[i] for i in idx],
            units=dict(self.units),
            input_units={s: dict(u) for s, u in self.input_units.items()},
            symmetrised_shielding=self.symmetrised_shielding,
            ms_convention=self.ms_convention,
        )

    def file_hashes(self) -> dict[str, str]:
        """SHA-256 of every distinct source file (for training provenance)."""
        return {src: sha256_file(src) for src in dict.fromkeys(self.sources)}



def _is_magres(path: Path, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "magres"
    return path.suffix.lower() in _MAGRES_SUFFIXES


def _undeclared_magres_tensors(path: str, props: Sequence[str]) -> dict[str, int]:
    """Properties with data lines in the file's magres block but no ``units`` line for them
    (ASE's reader drops such a block silently), with their number of lines."""
    counts: dict[str, int] = {}
    declared: set[str] = set()
    in_block = False
    with open(path, errors="replace") as handle:
        for line in handle:
            words = line.split()
            if not words:
                continue
            tag = words[0].lower()
            if tag in ("[magres]", "<magres>"):
                in_block = True
            elif tag in ("[/magres]", "</magres>"):
                in_block = False
            elif in_block and tag == "units" and len(words) > 1:
                declared.add(words[1])
            elif in_block and words[0] in props:
                counts[words[0]] = counts.get(words[0], 0) + 1
    return {prop: n for prop, n in counts.items() if prop not in declared}


def _tensor_block(raw: object, n_atoms: int, prop: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom (n, 3, 3) float tensors and a 'provided' mask from an ASE array.

    Handles (n, 9) row-major, (n, 3, 3) and magres object arrays with ``None`` entries.
    """
    arr = np.asarray(raw)
    provided = np.ones(n_atoms, dtype=bool)
    if arr.dtype == object:
        out = np.zeros((n_atoms, 3, 3))
        for i, item in enumerate(arr):
            if item is None:
                provided[i] = False
            else:
                out[i] = np.asarray(item, dtype=float).reshape(3, 3)
        return out, provided
    if arr.shape[:1] != (n_atoms,):
        raise ValueError(f"{source}: '{prop}' has shape {arr.shape}, expected one row per atom")
    if arr.shape[1:] == (9,):
        out = arr.astype(float).reshape(n_atoms, 3, 3)  # row-major: T[i, j] = row[3 i + j]
    elif arr.shape[1:] == (3, 3):
        out = arr.astype(float).copy()
    else:
        raise ValueError(
            f"{source}: '{prop}' has shape {arr.shape}; expected 9 numbers (row-major 3x3) per atom"
        )
    return out, provided


def _file_mask(atoms: Atoms, prop: str, source: str) -> np.ndarray | None:
    key = f"{prop}_mask"
    if key not in atoms.arrays:
        return None
    mask = np.asarray(atoms.arrays[key])
    if mask.shape != (len(atoms),):
        raise ValueError(f"{source}: '{key}' must hold one value per atom, got shape {mask.shape}")
    if mask.dtype != bool:
        if not np.all(np.isin(mask, (0, 1))):
            raise ValueError(f"{source}: '{key}' must be boolean")
        mask = mask.astype(bool)
    return mask


def read_tensor_dataset(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    ms_units: str | None = None,
    efg_units: str | None = None,
    symmetrise_shielding: bool = True,
    properties: Sequence[str] = TENSOR_PROPERTIES,
    index: str | int | slice = ":",
    format: str | None = None,
    ms_convention: str = "shielding",
) -> TensorDataset:
    """Read DFT tensors from magres / extended XYZ files (names or glob patterns).

    Parameters
    ----------
    paths:
        File names and/or glob patterns.
    ms_units, efg_units:
        Units of the tensors in files that do not state them (extended XYZ):
        ``ms_units='ppm'``; ``efg_units='au'`` or ``'V/A^2'``. Required when such a file
        holds the property; magres files use the units they state.
    symmetrise_shielding:
        Replace sigma by (sigma + sigma^T)/2 (default); False keeps sigma(1).
    properties:
        Which of ``'ms'``, ``'efg'`` to read.
    index, format:
        Passed to ``ase.io.read`` for non-magres files (default all frames).
    ms_convention:
        What the ``ms`` numbers of non-magres files are: ``'shielding'`` (σ, default) or
        ``'shift'`` (−σ up to a constant per element, as VASP's LCHIMAG prints them;
        negated on reading so that the dataset holds σ − σ_core). Magres files hold σ by
        definition of the format. Never guessed: see ``docs/conventions.md``.

    Raises ``ValueError`` naming the file (and block or property) for a magres block
    with tensors but no ``units`` line for them (ASE drops it silently), and for a file
    whose every tensor of a property is NaN or inf.

    Returns
    -------
    TensorDataset with shielding in ppm and EFG in atomic units.
    """
    import ase.io

    props = tuple(properties)
    for prop in props:
        if prop not in TENSOR_PROPERTIES:
            raise ValueError(f"unknown tensor property {prop!r}; expected a subset of {TENSOR_PROPERTIES}")
    if ms_convention not in MS_CONVENTIONS:
        raise ValueError(
            f"unknown ms_convention {ms_convention!r}: use one of "
            + "; ".join(f"{name!r} ({meaning})" for name, meaning in MS_CONVENTIONS.items())
        )
    stated = {
        "ms": normalise_ms_units(ms_units) if ms_units is not None else None,
        "efg": normalise_efg_units(efg_units) if efg_units is not None else None,
    }

    structures: list[Atoms] = []
    tensors: dict[str, list[np.ndarray]] = {p: [] for p in TENSOR_PROPERTIES}
    masks: dict[str, list[np.ndarray]] = {p: [] for p in TENSOR_PROPERTIES}
    sources: list[str] = []
    frames: list[int] = []
    input_units: dict[str, dict[str, str]] = {}

    for path in expand_paths(paths):
        source = os.fspath(path)
        magres = _is_magres(path, format)
        try:
            if magres:
                images = [ase.io.read(source, format="magres")]
            else:
                read = ase.io.read(source, index=index, format=format)
                images = read if isinstance(read, list) else [read]
        except Exception as exc:  # ASE raises many exception types on bad input
            raise ValueError(f"could not read {source!r} with ASE: {exc}") from exc

        file_units: dict[str, str] = {}
        if magres:
            undeclared = _undeclared_magres_tensors(source, props)
            if undeclared:
                prop, n = next(iter(undeclared.items()))
                raise ValueError(
                    f"{source}: the [magres] block has {n} '{prop}' lines but no 'units {prop}' line "
                    f"(ASE's reader drops such a block silently); add 'units {prop} "
                    + ("ppm" if prop == "ms" else "au") + "' to the block"
                )
            if ms_convention != "shielding" and "ms" in props and "ms" in images[0].arrays:
                raise ValueError(f"{source}: magres files hold shieldings σ by definition; "
                                 f"ms_convention={ms_convention!r} applies to other formats only")
            declared = images[0].info.get("magres_units", {}) if images else {}
            for prop in props:
                if prop in images[0].arrays:
                    if prop not in declared:
                        raise ValueError(f"{source}: magres block has '{prop}' but no units line for it")
                    file_units[prop] = (
                        normalise_ms_units(declared[prop]) if prop == "ms" else normalise_efg_units(declared[prop])
                    )
        else:
            for prop in props:
                if any(prop in atoms.arrays for atoms in images):
                    if stated[prop] is None:
                        raise ValueError(
                            f"{source} holds per-atom '{prop}' tensors but this format does not state "
                            f"their units: pass {prop}_units="
                            + ("'ppm'" if prop == "ms" else "'au' or 'V/A^2'")
                        )
                    file_units[prop] = stated[prop]
        input_units[source] = file_units

        usable = {prop: 0 for prop in file_units}
        for frame, atoms in enumerate(images):
            n = len(atoms)
            for prop in TENSOR_PROPERTIES:
                if prop in props and prop in atoms.arrays:
                    values, provided = _tensor_block(atoms.arrays[prop], n, prop, source)
                    mask = provided & np.all(np.isfinite(values), axis=(1, 2))
                    fmask = _file_mask(atoms, prop, source)
                    if fmask is not None:
                        mask &= fmask
                    usable[prop] += int(mask.sum())
                    values = np.where(mask[:, None, None], values, 0.0)
                    if prop == "efg":
                        values = efg_to_au(values, file_units["efg"])
                    else:
                        if ms_convention == "shift":
                            values = -values
                        if symmetrise_shielding:
                            values = 0.5 * (values + np.swapaxes(values, 1, 2))
                else:
                    values, mask = np.zeros((n, 3, 3)), np.zeros(n, dtype=bool)
                tensors[prop].append(np.ascontiguousarray(values))
                masks[prop].append(mask)
            clean = atoms.copy()
            clean.calc = None
            for key in ("ms", "efg", "ms_mask", "efg_mask"):
                if key in clean.arrays:
                    del clean.arrays[key]
            structures.append(clean)
            sources.append(source)
            frames.append(frame if not magres else 0)
        for prop, n_usable in usable.items():
            if n_usable == 0 and any(_provided_anywhere(atoms, prop, source) for atoms in images):
                raise ValueError(
                    f"{source}: property '{prop}' is present but every tensor is NaN or inf: "
                    "no usable training data in this file"
                )

    return TensorDataset(
        structures=structures,
        tensors=tensors,
        masks=masks,
        sources=sources,
        frames=frames,
        units=dict(INTERNAL_UNITS),
        input_units=input_units,
        symmetrised_shielding=symmetrise_shielding,
        ms_convention=ms_convention,
    )


def _provided_anywhere(atoms: Atoms, prop: str, source: str) -> bool:
    """Whether the file gives ``prop`` for at least one atom (present, not masked out)."""
    if prop not in atoms.arrays:
        return False
    _, provided = _tensor_block(atoms.arrays[prop], len(atoms), prop, source)
    file_mask = _file_mask(atoms, prop, source)
    return bool(np.any(provided if file_mask is None else provided & file_mask))
