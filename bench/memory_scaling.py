#!/usr/bin/env python
"""Peak memory of our descriptors against system size: 1 800, 14 400 and 115 200 atoms.

Run from the repository root::

    PYTHONPATH=. python bench/memory_scaling.py

Structures, all from the shared 14 400-atom Na2Si2O5 box:

* ~1 800 atoms: the octant of the box (every fractional coordinate < 0.5, cell halved,
  still periodic; the cut makes artificial contacts across the new faces, which does not
  matter for memory);
* 14 400 atoms: the box;
* 115 200 atoms: the box repeated 2×2×2.

Each (size, path) pair runs in its own subprocess (the ``--memory-worker`` of
``bench_descriptors.py``, same settings: r_cut 5 Å, n_max 6, l_max 4, σ 0.4 Å, one
thread): peak RSS of one run minus the RSS just before it. Paths: neighbour list alone,
neighbour list + power spectrum (the output itself is n_atoms × 855 × 8 bytes), and the
contracted λ = 2 model (output n_atoms × 5). Results: a Markdown table on stdout and JSON
in ``bench/results/``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_descriptors as bd  # noqa: E402  (sets the one-thread environment first)

SIZES = [("quick", "octant of the box"), ("full", "the box"), ("repeat2", "box × (2, 2, 2)")]
PATHS = ["ours_neighbour_list", "ours_power_spectrum", "ours_lambda_contract"]
POWER_SPECTRUM_FEATURES = 855


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=[s for s, _ in SIZES], default=[s for s, _ in SIZES])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    records = []
    for size, description in SIZES:
        if size not in args.sizes:
            continue
        for name in PATHS:
            print(f"  {size:8s} {name}", file=sys.stderr, flush=True)
            record = bd.run_memory_worker(name, size, script=HERE / "bench_descriptors.py")
            record["description"] = description
            records.append(record)
            if "error" in record:
                print(f"    failed: {record['error']}", file=sys.stderr)

    lines = [
        "| path | atoms | peak increase (MB) | MB per atom | kB per atom | output (MB) | time of the run (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in PATHS:
        for record in records:
            if record["name"] != name or "error" in record:
                continue
            n = record["n_atoms"]
            output_mb = {"ours_power_spectrum": n * POWER_SPECTRUM_FEATURES * 8, "ours_lambda_contract": n * 5 * 8}.get(name)
            output_text = f"{output_mb / 2**20:.0f}" if output_mb else "–"
            lines.append(
                f"| {name} | {n} | {record['delta_mb']:.0f} | {record['delta_mb'] / n:.4f} | "
                f"{1024 * record['delta_mb'] / n:.2f} | {output_text} | {record['time_s']:.2f} |"
            )
    # marginal cost between the two largest sizes: the slope a linear model predicts
    lines += ["", "| path | marginal kB per added atom (14 400 → 115 200) |", "|---|---:|"]
    for name in PATHS:
        by_size = {r["structure"]: r for r in records if r["name"] == name and "error" not in r}
        if "full" in by_size and "repeat2" in by_size:
            a, b = by_size["full"], by_size["repeat2"]
            slope = 1024 * (b["delta_mb"] - a["delta_mb"]) / (b["n_atoms"] - a["n_atoms"])
            lines.append(f"| {name} | {slope:.2f} |")
    table = "\n".join(lines)
    print(table)

    output = args.output or HERE / "results" / f"memory_scaling_{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"machine": bd.machine_info(), "settings": bd.SETTINGS, "records": records,
                                  "markdown": table, "date": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))
    print(f"\nJSON: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
