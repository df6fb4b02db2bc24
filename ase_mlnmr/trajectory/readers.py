"""Streaming trajectory readers: LAMMPS text dumps (own parser, byte offsets, triclinic
boxes, per-atom NMR columns of the LAMMPS fix) and everything ``ase.io.iread`` streams
(extended XYZ, ASE ``.traj``, XDATCAR, CP2K, ...).

Every reader yields :class:`Frame` objects one at a time (memory independent of the
trajectory length), atoms sorted by id, with the MD step and the time of the frame.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, chemical_symbols

__all__ = ["Frame", "TrajectoryFormatError", "NMR_COLUMNS", "read_type_map", "iter_lammps_dump", "iter_ase",
           "iter_frames", "FrameClock"]


class TrajectoryFormatError(ValueError):
    """A trajectory file that cannot be read as promised (names file, frame, byte offset)."""


#: Per-atom columns written by the LAMMPS fix ``nmr/ml`` (``f_<fix-ID>[k]``, k from 1):
#: k → (name, unit). The EFG enters as its five λ = 2 spherical components (order m = −2..2
#: of :mod:`ase_mlnmr.core.spherical_tensors`), from which V, Vzz, CQ and η follow.
NMR_COLUMNS = {
    1: ("ms_iso", "ppm"),
    2: ("delta_iso", "ppm"),
    3: ("cq", "MHz"),
    4: ("eta_q", ""),
    5: ("vzz", "au"),
    6: ("efg_l2_m-2", "au"),
    7: ("efg_l2_m-1", "au"),
    8: ("efg_l2_m0", "au"),
    9: ("efg_l2_m1", "au"),
    10: ("efg_l2_m2", "au"),
    11: ("ood", ""),
    19: ("ms_iso_std", "ppm"),
    20: ("cq_std", "MHz"),
    21: ("vzz_axis_flag", ""),
}


@dataclass
class Frame:
    """One frame: ``atoms`` sorted by id, their ``ids``, the MD ``step`` (None when the file
    has none), the frame's position ``index`` in the file, its ``byte_offset`` (None when
    unknown) and, for dumps of the LAMMPS fix, the per-atom ``nmr`` columns by name."""

    index: int
    step: int | None
    atoms: Atoms
    ids: np.ndarray
    byte_offset: int | None = None
    nmr: dict[str, np.ndarray] | None = field(default=None, repr=False)


def read_type_map(data_file: str | Path) -> dict[int, str]:
    """LAMMPS type → element from a data file's ``Masses`` section: the element named in a
    trailing comment (``1 26.98 # Al``) or else the element of nearest standard mass."""
    text = Path(data_file).read_text().splitlines()
    try:
        start = next(i for i, line in enumerate(text) if line.split("#")[0].strip() == "Masses")
    except StopIteration:
        raise TrajectoryFormatError(f"{data_file}: no 'Masses' section to map atom types to elements") from None
    mapping: dict[int, str] = {}
    for line in text[start + 1:]:
        body, _, comment = line.partition("#")
        parts = body.split()
        if not parts:
            if mapping:
                break
            continue
        if not parts[0].isdigit():
            break
        atom_type, mass = int(parts[0]), float(parts[1])
        named = comment.strip().split()
        if named and named[0] in chemical_symbols[1:]:
            mapping[atom_type] = named[0]
        else:
            mapping[atom_type] = chemical_symbols[int(np.argmin(np.abs(atomic_masses[1:] - mass))) + 1]
    if not mapping:
        raise TrajectoryFormatError(f"{data_file}: empty 'Masses' section")
    return mapping


_POSITION_COLUMNS = (("x", "y", "z"), ("xu", "yu", "zu"), ("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))


def _lammps_box(lines: list[bytes], header: str) -> tuple[np.ndarray, np.ndarray, tuple[bool, bool, bool]]:
    """Cell (rows a, b, c, Å) and origin from the three BOX BOUNDS lines (orthogonal or tilted)."""
    flags = header.split()[3:]
    tilted = flags[:3] == ["xy", "xz", "yz"]
    if flags and flags[0] in ("abc", "avec"):
        raise ValueError("general triclinic boxes (BOX BOUNDS abc origin) are not supported")
    boundary = flags[3:] if tilted else flags
    pbc = tuple(b == "pp" for b in boundary) if len(boundary) == 3 else (True, True, True)
    values = np.array([line.split() for line in lines], dtype=float)
    if values.shape not in ((3, 2), (3, 3)) or (tilted and values.shape != (3, 3)):
        raise ValueError(f"bad BOX BOUNDS lines {[line.decode(errors='replace') for line in lines]}")
    xy, xz, yz = values[:, 2] if tilted else (0.0, 0.0, 0.0)
    xlo = values[0, 0] - min(0.0, xy, xz, xy + xz)
    xhi = values[0, 1] - max(0.0, xy, xz, xy + xz)
    ylo = values[1, 0] - min(0.0, yz)
    yhi = values[1, 1] - max(0.0, yz)
    zlo, zhi = values[2, :2]
    cell = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])
    return cell, np.array([xlo, ylo, zlo]), pbc  # type: ignore[return-value]


def _parse_dump_frame(stream, type_map: Mapping[int, str] | None, nmr_prefix: str | None) -> tuple[int, Atoms, np.ndarray, dict | None]:
    """Parse one frame after its 'ITEM: TIMESTEP' line; ValueError names the problem."""
    def item(expected: str) -> str:
        line = stream.readline()
        if not line:
            raise ValueError(f"file ends before 'ITEM: {expected}'")
        text = line.decode(errors="replace").strip()
        if not text.startswith(f"ITEM: {expected}"):
            raise ValueError(f"expected 'ITEM: {expected}', found {text[:60]!r}")
        return text

    def value_line() -> bytes:
        line = stream.readline()
        if not line:
            raise ValueError("file ends inside the frame header")
        return line

    step = int(value_line().split()[0])
    item("NUMBER OF ATOMS")
    n_atoms = int(value_line().split()[0])
    if n_atoms <= 0:
        raise ValueError(f"NUMBER OF ATOMS is {n_atoms}")
    box_header = item("BOX BOUNDS")
    cell, origin, pbc = _lammps_box([value_line() for _ in range(3)], box_header)
    columns = item("ATOMS").split()[2:]
    lines = [stream.readline() for _ in range(n_atoms)]
    if not lines[-1] or not lines[-1].endswith(b"\n"):
        complete = sum(1 for line in lines if line.endswith(b"\n"))
        raise ValueError(f"truncated: {complete} of {n_atoms} atom lines")
    tokens = b" ".join(lines).split()
    if len(tokens) != n_atoms * len(columns):
        raise ValueError(f"{len(tokens)} values for {n_atoms} atoms x {len(columns)} columns {columns}")
    table = np.array(tokens).reshape(n_atoms, len(columns))

    def numeric(name: str, dtype=float) -> np.ndarray:
        try:
            return table[:, columns.index(name)].astype(dtype)
        except ValueError as error:
            raise ValueError(f"column {name!r} is not numeric ({error})") from None

    if "id" not in columns:
        raise ValueError(f"no 'id' column (columns: {columns})")
    ids = numeric("id", np.int64)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if np.any(ids[1:] == ids[:-1]):
        raise ValueError("duplicate atom ids")
    if "element" in columns:
        symbols = [s.decode() for s in table[order, columns.index("element")]]
    elif "type" in columns:
        if type_map is None:
            raise ValueError("atom types need a type -> element map (type_map or a LAMMPS data file)")
        types = numeric("type", np.int64)[order]
        missing = sorted(set(types.tolist()) - set(type_map))
        if missing:
            raise ValueError(f"atom types {missing} are not in the type -> element map {dict(type_map)}")
        symbols = [type_map[t] for t in types.tolist()]
    else:
        raise ValueError(f"neither 'element' nor 'type' column (columns: {columns})")
    names = next((names for names in _POSITION_COLUMNS if all(n in columns for n in names)), None)
    if names is None:
        raise ValueError(f"no coordinates: need one of x y z, xu yu zu, xs ys zs, xsu ysu zsu (columns: {columns})")
    coordinates = np.column_stack([numeric(n)[order] for n in names])
    if not np.all(np.isfinite(coordinates)):
        raise ValueError("non-finite coordinates")
    positions = origin + coordinates @ cell if names[0].startswith("xs") else coordinates
    atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=pbc, celldisp=origin)
    nmr = None
    if nmr_prefix is not None:
        wanted = {f"{nmr_prefix}[{k}]": name for k, (name, _) in NMR_COLUMNS.items()}
        present = {name: numeric(col)[order] for col, name in wanted.items() if col in columns}
        needed = [f"{nmr_prefix}[{k}]" for k in range(6, 11)]
        if not all(col in columns for col in needed):
            raise ValueError(f"NMR columns requested but {[c for c in needed if c not in columns]} missing "
                             f"(the five EFG components, see NMR_COLUMNS; columns: {columns})")
        nmr = present
    return step, atoms, ids, nmr


def iter_lammps_dump(path: str | Path, type_map: Mapping[int, str] | None = None, nmr_prefix: str | None = None,
                     on_error: str = "raise", skipped: list | None = None) -> Iterator[Frame]:
    """Frames of a LAMMPS text dump (``dump atom``/``dump custom``), one at a time.

    ``on_error='raise'`` (default): a corrupt or truncated frame raises
    :class:`TrajectoryFormatError` naming the frame number and byte offset; ``'skip'``
    warns, appends ``(frame, offset, reason)`` to ``skipped`` and resumes at the next
    ``ITEM: TIMESTEP``. ``nmr_prefix`` (e.g. ``'f_nmr'``) also reads the fix's columns.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    with open(path, "rb") as stream:
        index = 0
        line = stream.readline()
        offset = 0
        while line:
            if line.strip() != b"ITEM: TIMESTEP":
                if index == 0 and offset == 0:
                    raise TrajectoryFormatError(f"{path}: not a LAMMPS text dump (first line {line[:40]!r})")
                offset = stream.tell()
                line = stream.readline()
                continue
            try:
                step, atoms, ids, nmr = _parse_dump_frame(stream, type_map, nmr_prefix)
            except ValueError as error:
                message = f"{path}: frame {index} (byte offset {offset}): {error}"
                if on_error == "raise":
                    raise TrajectoryFormatError(message) from None
                warnings.warn(f"skipping corrupt frame: {message}", stacklevel=2)
                if skipped is not None:
                    skipped.append((index, offset, str(error)))
                index += 1
                # resynchronise on the next frame header
                while True:
                    offset = stream.tell()
                    line = stream.readline()
                    if not line or line.strip() == b"ITEM: TIMESTEP":
                        break
                continue
            yield Frame(index=index, step=step, atoms=atoms, ids=ids, byte_offset=offset, nmr=nmr)
            index += 1
            offset = stream.tell()
            line = stream.readline()


def iter_ase(path: str | Path, format: str | None = None) -> Iterator[Frame]:
    """Frames of any file ``ase.io.iread`` streams; ids from ``atoms.arrays['id']`` if
    present, else 1..N in file order; no MD step (give the time between frames)."""
    from ase.io import iread

    iterator = iread(str(path), index=":", format=format, parallel=False)  # ASE would broadcast under MPI
    for index in itertools.count():
        try:
            atoms = next(iterator)
        except StopIteration:
            return
        except Exception as error:  # ASE raises many types for unreadable frames
            raise TrajectoryFormatError(f"{path}: frame {index} (byte offset unknown): "
                                        f"{type(error).__name__}: {error}") from error
        if "id" in atoms.arrays:
            ids = np.asarray(atoms.arrays["id"], dtype=np.int64)
            order = np.argsort(ids, kind="stable")
            atoms, ids = atoms[order], ids[order]
        else:
            ids = np.arange(1, len(atoms) + 1, dtype=np.int64)
        step = atoms.info.get("step", atoms.info.get("timestep"))
        yield Frame(index=index, step=None if step is None else int(step), atoms=atoms, ids=ids)


def iter_frames(path: str | Path, format: str | None = None, start: int = 0, stop: int | None = None,
                stride: int = 1, type_map: Mapping[int, str] | None = None, data_file: str | Path | None = None,
                nmr_prefix: str | None = None, on_error: str = "raise", skipped: list | None = None,
                allow_changing_atoms: bool = False) -> Iterator[Frame]:
    """Frames ``start:stop:stride`` of a trajectory, streamed, checked for a constant atom
    set (unless ``allow_changing_atoms``). ``format`` None guesses: ``lammps-dump-text`` for
    ``*.dump``/``*.lammpstrj``/``dump.*`` names, else ASE's guess."""
    if start < 0 or stride < 1 or (stop is not None and stop < start):
        raise ValueError(f"need 0 <= start <= stop and stride >= 1, got start={start}, stop={stop}, stride={stride}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    name = path.name.lower()
    if format is None and (name.endswith((".dump", ".lammpstrj")) or name.startswith("dump.")):
        format = "lammps-dump-text"
    if format == "lammps-dump-text":
        if type_map is None and data_file is not None:
            type_map = read_type_map(data_file)
        frames = iter_lammps_dump(path, type_map, nmr_prefix, on_error, skipped)
    else:
        if nmr_prefix is not None:
            raise ValueError("NMR columns can only be read from LAMMPS dump files")
        frames = iter_ase(path, format)
    reference_ids = None
    for frame in itertools.islice(frames, start, stop, stride):
        if reference_ids is None:
            reference_ids = frame.ids
        elif not allow_changing_atoms and (len(frame.ids) != len(reference_ids)
                                           or not np.array_equal(frame.ids, reference_ids)):
            raise TrajectoryFormatError(
                f"{path}: frame {frame.index}" + (f" (byte offset {frame.byte_offset})" if frame.byte_offset else "")
                + f": atoms changed ({len(frame.ids)} atoms, first frame had {len(reference_ids)}, or other ids); "
                "pass allow_changing_atoms to follow the atoms of the first frame")
        yield frame


class FrameClock:
    """Time between kept frames, checked frame by frame.

    With MD steps in the file (dumps) the spacing Δstep of the first two kept frames must
    hold for every later pair, and the time between frames is Δstep × ``timestep_fs``
    (or ``frame_time_fs`` if given instead). Without steps ``frame_time_fs`` is required.
    """

    def __init__(self, timestep_fs: float | None = None, frame_time_fs: float | None = None) -> None:
        for name, value in (("timestep_fs", timestep_fs), ("frame_time_fs", frame_time_fs)):
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of fs, got {value}")
        self.timestep_fs, self.frame_time_fs = timestep_fs, frame_time_fs
        self._previous: Frame | None = None
        self.step_spacing: int | None = None
        self.n_frames = 0

    def tick(self, frame: Frame) -> None:
        """Register the next kept frame; TrajectoryFormatError on uneven spacing."""
        previous, self._previous = self._previous, frame
        self.n_frames += 1
        if previous is None or frame.step is None or previous.step is None:
            if frame.step is None and self.frame_time_fs is None:
                raise ValueError("the trajectory has no MD step numbers: give the time between frames (frame_time_fs)")
            return
        spacing = frame.step - previous.step
        where = f"frame {frame.index}" + (f" (byte offset {frame.byte_offset})" if frame.byte_offset else "")
        if spacing <= 0:
            raise TrajectoryFormatError(f"{where}: step {frame.step} does not follow step {previous.step}")
        if self.step_spacing is None:
            self.step_spacing = spacing
            if self.timestep_fs is None and self.frame_time_fs is None:
                raise ValueError("dump frames carry MD steps: give the MD time step (timestep_fs) "
                                 "or the time between frames (frame_time_fs)")
        elif spacing != self.step_spacing:
            raise TrajectoryFormatError(
                f"{where}: uneven spacing, step {frame.step} is {spacing} steps after the previous kept frame "
                f"(earlier frames: {self.step_spacing}); unevenly spaced frames cannot be correlated")

    @property
    def frame_time(self) -> float:
        """fs between kept frames."""
        if self.frame_time_fs is not None:
            return float(self.frame_time_fs)
        if self.step_spacing is None or self.timestep_fs is None:
            raise ValueError("time between frames unknown: need two frames with MD steps and timestep_fs, "
                             "or frame_time_fs")
        return self.step_spacing * float(self.timestep_fs)
