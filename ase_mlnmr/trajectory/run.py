"""Run the trajectory analysis: read frames, predict (or read the fix's columns), accumulate.

Serial, or MPI-parallel over frames (``mpiexec -n K ase-mlnmr trajectory ...``, mpi4py):
rank 0 reads the trajectory and deals out chunks of ``chunk_frames`` (default
:data:`~.analysis.CHUNK_FRAMES`) frames round-robin (rank 0 keeps its share); every rank
predicts its chunk; rank 0 takes the chunks back in frame order and accumulates them
exactly as the serial run does.
"""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .analysis import CHUNK_FRAMES, AnalysisOptions, TrajectoryAccumulator, TrajectoryResults, write_outputs
from .frame_values import predict_frame, values_from_columns
from .readers import Frame, FrameClock, iter_frames

__all__ = ["run_trajectory", "mpi_world"]


def mpi_world():
    """mpi4py's COMM_WORLD when running under mpiexec with more than one rank, else None."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _chunks(frames: Iterator[Frame], clock: FrameClock, chunk_frames: int) -> Iterator[list[Frame]]:
    """Chunks of ``chunk_frames`` frames; the first two frames are read (and timed) before
    the first chunk is handed out, so the time between frames is known from the start."""
    ahead = list(itertools.islice(frames, 2))
    for frame in ahead:
        clock.tick(frame)
    frames = itertools.chain(ahead, frames)
    timed = len(ahead)
    while True:
        chunk = list(itertools.islice(frames, chunk_frames))
        if not chunk:
            return
        for frame in chunk[timed:]:
            clock.tick(frame)
        timed = max(0, timed - len(chunk))
        yield chunk


def run_trajectory(trajectory: str | Path, model: Any, output: str | Path, *, format: str | None = None,
                   start: int = 0, stop: int | None = None, stride: int = 1,
                   type_map: Mapping[int, str] | None = None, data_file: str | Path | None = None,
                   timestep_fs: float | None = None, frame_time_fs: float | None = None,
                   nmr_columns: str | None = None, unknown_species: str = "raise", on_error: str = "raise",
                   allow_changing_atoms: bool = False, options: AnalysisOptions | None = None,
                   plots: bool = True, progress: bool = True, keep_series: bool = True,
                   chunk_frames: int = CHUNK_FRAMES, comm: Any = None) -> TrajectoryResults | None:
    """Analyse a trajectory and write the outputs into ``output`` (see docs/trajectory.md).

    ``model``: an :class:`~ase_mlnmr.nmr_model.NMRModel` or a model file path (a path is
    required with MPI: every rank loads it); unused with ``nmr_columns`` (e.g. ``'f_nmr'``:
    read the LAMMPS fix's per-atom columns instead of predicting). ``comm``: an mpi4py
    communicator (None: serial). ``chunk_frames``: frames per chunk of the time sums and
    per unit of work of a rank; results depend on it only through round-off and not at all
    on the number of ranks. Returns the results on rank 0, None on other ranks.
    """
    from ..nmr_model import NMRModel

    options = options or AnalysisOptions()
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    rank = comm.Get_rank() if comm is not None else 0
    size = comm.Get_size() if comm is not None else 1
    isotopes: Mapping[str, str] = {}
    if nmr_columns is None:
        if size > 1 and isinstance(model, NMRModel):
            raise ValueError("with MPI pass the model as a file path: every rank loads it")
        model = model if isinstance(model, NMRModel) else NMRModel.load(model)
        isotopes = model.isotopes

        def evaluate(frame: Frame):
            return predict_frame(model, frame, unknown_species)
    else:
        def evaluate(frame: Frame):
            return values_from_columns(frame, isotopes)

    if rank != 0:
        _serve(comm, evaluate)
        return None
    try:
        return _run_rank0(comm, size, evaluate, trajectory, output, format, start, stop, stride, type_map,
                          data_file, timestep_fs, frame_time_fs, nmr_columns, on_error, allow_changing_atoms,
                          options, plots, progress, keep_series, isotopes, chunk_frames)
    finally:
        for worker in range(1, size):
            comm.send(None, dest=worker)


def _receive(comm, source: int):
    """Receive one message, polling every 5 ms instead of MPI's busy wait (which takes a
    whole core from the ranks that are computing when cores are shared)."""
    while not comm.iprobe(source=source):
        time.sleep(0.005)
    return comm.recv(source=source)


def _serve(comm, evaluate) -> None:
    """Worker ranks: predict the chunks rank 0 sends until it sends None."""
    while True:
        chunk = _receive(comm, 0)
        if chunk is None:
            return
        try:
            comm.send(("ok", [evaluate(frame) for frame in chunk]), dest=0)
        except Exception as error:  # reported by rank 0 with the frame range
            comm.send(("error", f"{type(error).__name__}: {error}"), dest=0)


def _run_rank0(comm, size, evaluate, trajectory, output, format, start, stop, stride, type_map, data_file,
               timestep_fs, frame_time_fs, nmr_columns, on_error, allow_changing_atoms, options, plots, progress,
               keep_series, isotopes, chunk_frames) -> TrajectoryResults:
    from tqdm import tqdm

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    skipped: list = []
    frames = iter_frames(trajectory, format=format, start=start, stop=stop, stride=stride, type_map=type_map,
                         data_file=data_file, nmr_prefix=nmr_columns, on_error=on_error, skipped=skipped,
                         allow_changing_atoms=allow_changing_atoms)
    clock = FrameClock(timestep_fs=timestep_fs, frame_time_fs=frame_time_fs)
    accumulator: TrajectoryAccumulator | None = None
    last_frame = None
    bar = tqdm(desc="frames", unit="frame", disable=not progress)
    chunks = _chunks(frames, clock, chunk_frames)
    while True:
        batch = list(itertools.islice(chunks, size))
        if not batch:
            break
        for worker, chunk in enumerate(batch[1:], start=1):
            comm.send(chunk, dest=worker)
        own = [evaluate(frame) for frame in batch[0]]
        for worker, chunk in enumerate(batch):
            if worker == 0:
                values = own
            else:
                status, values = _receive(comm, worker)
                if status != "ok":
                    raise RuntimeError(f"rank {worker}, frames {chunk[0].index}..{chunk[-1].index}: {values}")
            if accumulator is None:
                if clock.n_frames < 2:
                    raise ValueError(f"{trajectory}: need at least 2 frames for time correlations, "
                                     f"got {clock.n_frames}")
                accumulator = TrajectoryAccumulator(values[0], clock.frame_time, options,
                                                    output / "series" if keep_series else None)
            accumulator.add_chunk(values)
            bar.update(len(values))
        last_frame = batch[-1][-1]
    bar.close()
    if accumulator is None:
        raise ValueError(f"{trajectory}: no frames in the selected range (start={start}, stop={stop}, stride={stride})")
    last_atoms = last_frame.atoms[np.searchsorted(last_frame.ids, accumulator.ids)]  # the followed atoms
    results = write_outputs(accumulator, last_atoms, output, isotopes, plots=plots)
    results.skipped_frames = skipped
    summary = {"trajectory": str(trajectory), "n_frames": accumulator.n_frames, "frame_time_fs": clock.frame_time,
               "start": start, "stop": stop, "stride": stride, "mpi_ranks": size, "chunk_frames": chunk_frames, "elements": accumulator.elements,
               "shift_quantity": accumulator.shift_quantity, "source": nmr_columns or "model",
               "skipped_frames": [{"frame": f, "byte_offset": o, "reason": r} for f, o, r in skipped]}
    (output / "summary.json").write_text(json.dumps(summary, indent=1))
    if not keep_series:
        accumulator.store.close()
    return results
