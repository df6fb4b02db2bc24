"""CPU time of the neighbour search, this checkout against an older one, side by side.

Structures: the shared 14 400-atom Na2Si2O5 box (periodic), the same atoms as an open
cluster, and that cluster with 5 atoms flung 1e6 Å away (an exploded MD frame), r_cut 5 Å.
Each checkout runs in its own interpreter; best of ``--repeats`` CPU times
(``time.process_time``).

    PYTHONPATH=. python bench/neighbour_search.py --before /path/to/older/checkout
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from shared_data import shared_dir

REPOSITORY = Path(__file__).resolve().parents[1]

WORKER = """
import json, sys, time
import ase_mlnmr
import numpy as np
from ase.io import read
from ase_mlnmr.core.neighbours import neighbour_list_from_atoms
box = read(sys.argv[1])
cluster = box.copy(); cluster.pbc = False
exploded = cluster.copy(); exploded.positions[[10, 2000, 5000, 9000, 14000]] += 1e6
out = {}
for name, atoms in (("periodic box", box), ("open cluster", cluster), ("exploded frame (5 atoms at 1e6 Å)", exploded)):
    best, pairs = float("inf"), None
    for _ in range(int(sys.argv[2])):
        start = time.process_time()
        try:
            nl = neighbour_list_from_atoms(atoms, 5.0)
            pairs = nl.n_pairs
        except Exception as error:
            pairs = f"{type(error).__name__}: {error}"[:80]
            break
        best = min(best, time.process_time() - start)
    out[name] = {"cpu_s": best, "pairs": pairs}
out["package"] = ase_mlnmr.__file__
print(json.dumps(out))
"""


def measure(checkout: Path, box: Path, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", WORKER, str(box), str(repeats)], env=env, cwd=checkout,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="older checkout, built in place")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    box = shared_dir() / "reference" / "bench_box_na2si2o5_14400.extxyz"
    now = measure(REPOSITORY, box, args.repeats)
    before = measure(args.before.resolve(), box, args.repeats)
    print(f"load: {os.getloadavg()}")
    print("| structure | pairs | CPU s now | CPU s before | ratio before/now |")
    print("|---|---|---|---|---|")
    print(f"now: {now.pop('package', '?')}, before: {before.pop('package', '?')}")
    for name, row in now.items():
        old = before.get(name, {})
        ratio = old.get("cpu_s", float("nan")) / row["cpu_s"] if isinstance(old.get("pairs"), int) else float("nan")
        print(f"| {name} | {row['pairs']} | {row['cpu_s']:.3f} | "
              f"{old.get('cpu_s', float('nan')) if isinstance(old.get('pairs'), int) else old.get('pairs', before.get('error'))} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
