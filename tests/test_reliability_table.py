"""docs/reliability.md is generated: its table holds exactly the cases of
bench/reliability_inputs.py, in order, each with an outcome and none a crash or a hang."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def generator():
    spec = importlib.util.spec_from_file_location("reliability_inputs", REPOSITORY / "bench" / "reliability_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_is_the_generators_output():
    script = generator()
    text = script.DOC.read_text()
    lines = text[text.index(script.START) + len(script.START):text.index(script.END)].strip().splitlines()
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]
    assert len(rows) == len(script.CASES) >= 40
    interfaces = {interface.split()[0] for interface, _, _ in script.CASES}
    assert {"API", "CLI", "loader", "LAMMPS", "C"} <= interfaces
    for k, (row, (interface, what, _)) in enumerate(zip(rows, script.CASES), 1):
        assert row[:3] == [str(k), interface, what.replace("|", "/")]
        assert row[3] and not row[3].startswith(("CRASH", "HANG")), row
    # no hand-written tables of inputs beside the generated one
    assert text.count("| input |") == 1
