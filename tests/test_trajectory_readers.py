"""Trajectory readers: the LAMMPS dump parser against ASE's own ``lammps-dump-text`` reader,
bad files, spacing checks, the fix's NMR columns, ASE formats with start/stop/stride."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write

from ase_mlnmr.trajectory.readers import (FrameClock, NMR_COLUMNS, TrajectoryFormatError, iter_frames,
                                          iter_lammps_dump, read_type_map)

TYPE_MAP = {1: "Al", 2: "O", 3: "Si"}


def dump_frame(step, ids, types, coordinates, bounds, tilt=None, columns=("x", "y", "z"), extra=None):
    """Text of one dump frame (LAMMPS layout) with atoms in the given (unsorted) order."""
    lines = ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(len(ids))]
    if tilt is None:
        lines.append("ITEM: BOX BOUNDS pp pp pp")
        lines += [f"{float(lo)!r} {float(hi)!r}" for lo, hi in bounds]
    else:
        lines.append("ITEM: BOX BOUNDS xy xz yz pp pp pp")
        lines += [f"{float(lo)!r} {float(hi)!r} {float(t)!r}" for (lo, hi), t in zip(bounds, tilt)]
    names = list(extra) if extra else []
    lines.append("ITEM: ATOMS id type " + " ".join(columns) + "".join(f" {n}" for n in names))
    for k in range(len(ids)):
        values = [repr(float(v)) for v in coordinates[k]] + ([repr(float(extra[n][k])) for n in names] if extra else [])
        lines.append(f"{ids[k]} {types[k]} " + " ".join(values))
    return "\n".join(lines) + "\n"


def triclinic_box(rng):
    """LAMMPS box (xlo, xhi, ...) with tilts, its bound values, and random fractional atoms."""
    lo = rng.uniform(-2, 2, 3)
    lengths = np.array([9.0, 8.5, 10.0])
    xy, xz, yz = 1.3, -0.7, 0.9
    cell = np.array([[lengths[0], 0, 0], [xy, lengths[1], 0], [xz, yz, lengths[2]]])
    hi = lo + lengths
    bounds = [(lo[0] + min(0, xy, xz, xy + xz), hi[0] + max(0, xy, xz, xy + xz)),
              (lo[1] + min(0, yz), hi[1] + max(0, yz)), (lo[2], hi[2])]
    return cell, lo, bounds, (xy, xz, yz)


def write_dump(path, n_frames=4, n_atoms=12, scaled=False, seed=0, steps=None, extra=None):
    rng = np.random.default_rng(seed)
    cell, origin, bounds, tilt = triclinic_box(rng)
    ids = rng.permutation(np.arange(1, n_atoms + 1) * 2)
    types = rng.integers(1, 4, n_atoms)
    steps = steps if steps is not None else [100 * k for k in range(n_frames)]
    text, truth = "", []
    for k, step in enumerate(steps):
        fractional = rng.uniform(0, 1, (n_atoms, 3))
        positions = origin + fractional @ cell
        columns = ("xs", "ys", "zs") if scaled else ("x", "y", "z")
        text += dump_frame(step, ids, types, fractional if scaled else positions, bounds, tilt, columns,
                           None if extra is None else extra(k, n_atoms))
        order = np.argsort(ids)
        truth.append((positions[order], [TYPE_MAP[t] for t in types[order]], cell, origin))
    path.write_text(text)
    return truth


@pytest.mark.parametrize("scaled", [False, True])
def test_dump_reader_matches_ase_reader(tmp_path, scaled):
    path = tmp_path / "traj.dump"
    truth = write_dump(path, scaled=scaled)
    ours = list(iter_lammps_dump(path, TYPE_MAP))
    theirs = read(path, index=":", format="lammps-dump-text", specorder=["Al", "O", "Si"])
    assert len(ours) == len(theirs) == 4
    for frame, atoms, (positions, symbols, cell, origin) in zip(ours, theirs, truth):
        assert frame.atoms.get_chemical_symbols() == atoms.get_chemical_symbols() == symbols
        np.testing.assert_allclose(frame.atoms.cell.array, atoms.cell.array, rtol=0, atol=1e-12)
        np.testing.assert_allclose(frame.atoms.cell.array, cell, atol=1e-12)
        # ASE keeps Cartesian coordinates as written and puts scaled ones at s·cell (no origin)
        shift = origin if scaled else 0.0
        np.testing.assert_allclose(frame.atoms.positions - shift, atoms.positions, rtol=0, atol=1e-12)
        np.testing.assert_allclose(frame.atoms.positions, positions, atol=1e-12)
        assert np.all(np.diff(frame.ids) > 0)


def test_truncated_and_corrupt_frames_name_frame_and_byte_offset(tmp_path):
    path = tmp_path / "bad.dump"
    write_dump(path, n_frames=4)
    data = path.read_bytes()
    frame_starts = [i for i in range(len(data)) if data.startswith(b"ITEM: TIMESTEP", i)]
    corrupt = data[:frame_starts[1]] + data[frame_starts[1]:frame_starts[2]].replace(b"ITEM: NUMBER OF ATOMS",
                                                                                     b"ITEM: NUMBER OF ATMOS")
    corrupt += data[frame_starts[2]:]
    path.write_bytes(corrupt)
    with pytest.raises(TrajectoryFormatError, match=rf"frame 1 \(byte offset {frame_starts[1]}\).*NUMBER OF ATOMS"):
        list(iter_lammps_dump(path, TYPE_MAP))
    skipped = []
    with pytest.warns(UserWarning, match="skipping corrupt frame"):
        frames = list(iter_lammps_dump(path, TYPE_MAP, on_error="skip", skipped=skipped))
    assert [f.index for f in frames] == [0, 2, 3] and [s[:2] for s in skipped] == [(1, frame_starts[1])]
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(TrajectoryFormatError, match=rf"frame 3 \(byte offset {frame_starts[3]}\): truncated"):
        list(iter_lammps_dump(path, TYPE_MAP))
    path.write_bytes(data.replace(b"ITEM: ATOMS id type", b"ITEM: ATOMS id kind", 1))
    with pytest.raises(TrajectoryFormatError, match="frame 0 .*neither 'element' nor 'type'"):
        list(iter_lammps_dump(path, TYPE_MAP))
    path.write_bytes(data)
    with pytest.raises(TrajectoryFormatError, match=r"types \[3\] are not in the type -> element map"):
        list(iter_lammps_dump(path, {1: "Al", 2: "O"}))
    with pytest.raises(TrajectoryFormatError, match="need a type -> element map"):
        list(iter_lammps_dump(path))
    (tmp_path / "x.dump").write_text("hello\n")
    with pytest.raises(TrajectoryFormatError, match="not a LAMMPS text dump"):
        list(iter_lammps_dump(tmp_path / "x.dump", TYPE_MAP))


def test_spacing_and_changing_atoms(tmp_path):
    path = tmp_path / "uneven.dump"
    write_dump(path, steps=[0, 10, 20, 35, 45])
    clock = FrameClock(timestep_fs=2.0)
    with pytest.raises(TrajectoryFormatError, match="frame 3 .*uneven spacing, step 35 is 15 steps"):
        for frame in iter_frames(path, type_map=TYPE_MAP):
            clock.tick(frame)
    clock = FrameClock(timestep_fs=2.0)
    for frame in iter_frames(path, type_map=TYPE_MAP, stop=3):
        clock.tick(frame)
    assert clock.frame_time == 20.0
    clock = FrameClock()
    frames = iter_frames(path, type_map=TYPE_MAP)
    clock.tick(next(frames))
    with pytest.raises(ValueError, match="give the MD time step"):
        clock.tick(next(frames))
    with pytest.raises(ValueError, match="timestep_fs must be a positive"):
        FrameClock(timestep_fs=-1.0)
    first = path.read_text()
    second = tmp_path / "other.dump"
    write_dump(second, n_frames=2, n_atoms=13, seed=1, steps=[50, 60])
    (tmp_path / "joined.dump").write_text(first.split("ITEM: TIMESTEP\n35")[0] + second.read_text())
    with pytest.raises(TrajectoryFormatError, match="frame 3 .*atoms changed"):
        list(iter_frames(tmp_path / "joined.dump", type_map=TYPE_MAP))
    assert len(list(iter_frames(tmp_path / "joined.dump", type_map=TYPE_MAP, allow_changing_atoms=True))) == 5
    with pytest.raises(ValueError, match="stride >= 1"):
        next(iter_frames(path, type_map=TYPE_MAP, stride=0))
    with pytest.raises(FileNotFoundError):
        next(iter_frames(tmp_path / "missing.dump"))


def test_type_map_from_data_file_and_fix_columns(tmp_path):
    data = tmp_path / "glass.data"
    data.write_text("glass\n\n3 atoms\n3 atom types\n\nMasses\n\n1 26.9815 # Al\n2 15.999\n3 28.0855\n\nAtoms\n")
    assert read_type_map(data) == {1: "Al", 2: "O", 3: "Si"}
    path = tmp_path / "nmr.dump"

    def columns(k, n):
        return {f"f_nmr[{j}]": 100 * k + 10 * j + np.arange(n) for j in NMR_COLUMNS}

    write_dump(path, n_frames=2, extra=columns)
    frames = list(iter_frames(path, data_file=data, nmr_prefix="f_nmr"))
    raw = path.read_text().split("ITEM: ATOMS ")[2].splitlines()[1:]
    by_id = {int(line.split()[0]): float(line.split()[5 + 5]) for line in raw}  # f_nmr[6] column
    np.testing.assert_array_equal(frames[1].nmr["efg_l2_m-2"], [by_id[i] for i in frames[1].ids])
    assert set(frames[0].nmr) == {name for name, _ in NMR_COLUMNS.values()}
    plain = tmp_path / "plain.dump"
    write_dump(plain, n_frames=1)
    with pytest.raises(TrajectoryFormatError, match=r"NMR columns requested but \['f_nmr\[6\]'"):
        list(iter_frames(plain, type_map=TYPE_MAP, nmr_prefix="f_nmr"))


def test_ase_formats_stream_with_start_stop_stride(tmp_path):
    frames = [Atoms("AlO2", positions=np.random.default_rng(k).uniform(0, 4, (3, 3)), cell=[5, 5, 5], pbc=True)
              for k in range(9)]
    for name in ("t.extxyz", "t.traj"):
        write(tmp_path / name, frames)
        got = list(iter_frames(tmp_path / name, start=1, stop=8, stride=3))
        assert [f.index for f in got] == [1, 4, 7]
        for frame in got:
            np.testing.assert_allclose(frame.atoms.positions, frames[frame.index].positions, atol=1e-10)
            assert frame.step is None and list(frame.ids) == [1, 2, 3]
    text = (tmp_path / "t.extxyz").read_text().splitlines()
    (tmp_path / "cut.extxyz").write_text("\n".join(text[:-2]) + "\n")
    with pytest.raises(TrajectoryFormatError, match="frame 8"):
        list(iter_frames(tmp_path / "cut.extxyz"))
