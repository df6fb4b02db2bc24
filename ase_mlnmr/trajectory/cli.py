"""``ase-mlnmr trajectory``: NMR along an MD trajectory (docs/trajectory.md).

Run under ``mpiexec -n K`` to predict frames on K ranks (needs the ``mpi`` extra).
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_trajectory_parser", "command_trajectory"]


def _type_map(text: str) -> dict[int, str]:
    """``1=Al,2=O`` or ``Al,O`` (types 1, 2, ... in order)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        if all("=" in item for item in items):
            return {int(k): v.strip() for k, v in (item.split("=", 1) for item in items)}
        if not any("=" in item for item in items):
            return {k + 1: item for k, item in enumerate(items)}
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"--types needs '1=Al,2=O' or 'Al,O', got {text!r}")


def _window(text: str) -> tuple[float, float | None]:
    parts = text.split(":")
    try:
        start = float(parts[0])
        end = float(parts[1]) if len(parts) > 1 and parts[1] else None
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"--plateau-window needs START:END in fs (END optional), got {text!r}")
    if len(parts) > 2 or start < 0 or (end is not None and end <= start):
        raise argparse.ArgumentTypeError(f"--plateau-window needs 0 <= START < END (fs), got {text!r}")
    return start, end


def add_trajectory_parser(commands) -> None:
    """Register the ``trajectory`` sub-command on the main parser's sub-parsers."""
    parser = commands.add_parser("trajectory", help="NMR along an MD trajectory: averages, G(s), scaling factors")
    parser.add_argument("model", nargs="?", default=None, help="model file (not needed with --nmr-columns)")
    parser.add_argument("trajectory", help="LAMMPS text dump, extended XYZ, ASE .traj or any ase.io format")
    parser.add_argument("-o", "--output", default="trajectory_nmr", help="output folder (default trajectory_nmr)")
    parser.add_argument("--format", default=None, help="ASE format name (default: guessed; dumps by name)")
    parser.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    parser.add_argument("--stop", type=int, default=None, help="stop before this frame (default: end)")
    parser.add_argument("--stride", type=int, default=1, help="use every N-th frame (default 1)")
    parser.add_argument("--types", type=_type_map, default=None, help="LAMMPS type -> element: '1=Al,2=O' or 'Al,O'")
    parser.add_argument("--data-file", default=None, help="LAMMPS data file whose Masses give the type map")
    parser.add_argument("--timestep-fs", type=float, default=None, help="MD time step in fs (dumps)")
    parser.add_argument("--frame-time-fs", type=float, default=None, help="time between frames in fs (non-dumps)")
    parser.add_argument("--nmr-columns", default=None, metavar="PREFIX",
                        help="read the LAMMPS fix's per-atom columns PREFIX[1..11] (e.g. f_nmr) instead of predicting")
    parser.add_argument("--skip-unknown", action="store_true", help="leave atoms of elements without a model out")
    parser.add_argument("--skip-bad-frames", action="store_true",
                        help="skip corrupt dump frames (warned and counted in summary.json) instead of failing")
    parser.add_argument("--allow-changing-atoms", action="store_true",
                        help="allow frames whose atoms differ (the first frame's atoms are followed)")
    parser.add_argument("--fluctuation", action="store_true", help="correlate fluctuations about each atom's mean")
    parser.add_argument("--plateau-window", type=_window, default=None, metavar="START:END",
                        help="plateau window in fs (default: automatic)")
    parser.add_argument("--blocks", type=int, default=8, help="atom blocks for the plateau uncertainty (default 8)")
    parser.add_argument("--levels", type=int, default=12, help="multiple-tau levels (default 12)")
    parser.add_argument("--level-length", type=int, default=16, help="multiple-tau first-level length p (default 16)")
    parser.add_argument("--chunk-frames", type=int, default=None,
                        help="frames per chunk of work and of the time sums (default 16; results do not "
                             "depend on the number of MPI ranks)")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact FFT estimator (streaming only)")
    parser.add_argument("--no-plots", action="store_true", help="no PNG plots")
    parser.add_argument("--no-series", action="store_true", help="do not keep the per-frame series files")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=command_trajectory)


def command_trajectory(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from .analysis import CHUNK_FRAMES, AnalysisOptions
    from .readers import TrajectoryFormatError
    from .run import mpi_world, run_trajectory

    if args.model is None and args.nmr_columns is None:
        raise CommandError("give a model file, or --nmr-columns to read the fix's columns")
    if args.model is not None and not Path(args.model).exists():
        raise CommandError(f"model file not found: {args.model}")
    if args.blocks < 1:
        raise CommandError(f"--blocks must be >= 1, got {args.blocks}")
    comm = mpi_world()
    try:
        options = AnalysisOptions(p=args.level_length, n_levels=args.levels, n_blocks=args.blocks,
                                  fluctuation=args.fluctuation, plateau_window_fs=args.plateau_window,
                                  exact=not args.no_exact)
        results = run_trajectory(
            args.trajectory, args.model, args.output, format=args.format, start=args.start, stop=args.stop,
            stride=args.stride, type_map=args.types, data_file=args.data_file, timestep_fs=args.timestep_fs,
            frame_time_fs=args.frame_time_fs, nmr_columns=args.nmr_columns,
            unknown_species="skip" if args.skip_unknown else "raise",
            on_error="skip" if args.skip_bad_frames else "raise", allow_changing_atoms=args.allow_changing_atoms,
            options=options, plots=not args.no_plots, progress=not args.quiet, keep_series=not args.no_series,
            chunk_frames=CHUNK_FRAMES if args.chunk_frames is None else args.chunk_frames, comm=comm)
    except (TrajectoryFormatError, ValueError, FileNotFoundError) as error:
        raise CommandError(str(error)) from error
    if results is None:  # MPI worker rank
        return 0
    print(f"{results.n_frames} frames, {results.frame_time_fs:g} fs apart -> {args.output}")
    for element, entry in results.scaling.items():
        if entry.get("P") is None:
            print(f"  {element}: no plateau ({entry.get('error')})")
        else:
            err = f" ± {entry['P_err']:.3g}" if entry.get("P_err") is not None else ""
            print(f"  {element}: P = {entry['P']:.4f}{err}, cq_scale = sqrt(P) = {entry['cq_scale']:.4f}, "
                  f"RMS ratio = {entry.get('rms_ratio') or float('nan'):.4f}")
    return 0
