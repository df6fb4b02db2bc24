"""Every snippet of README.md runs.

The Python blocks run in order, in one namespace, in a folder holding the files they
name: ``model.npz`` (the demo's config trained on the embedded mp_al27 set),
``runs/*.magres`` (the mp_al27 crystals with their DFT tensors, as magres files),
``glass.extxyz`` (an Na aluminosilicate crystal of the set) and ``md.dump`` (a short
jiggled LAMMPS dump of it). Shell blocks whose lines are ``ase-mlnmr`` commands run
after them, through ``python -m ase_mlnmr.cli``; the two set-up commands are checked verbatim (they
create a virtual environment: the CI runs the second one, `test_demo.py` the first's demo).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import ase_mlnmr
import numpy as np
import pytest
from ase.io import read, write

from trajectory_helpers import write_dump

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = README.parent
#: where the imported (built or installed) package lives: subprocesses must import the same one
PACKAGE_ROOT = Path(ase_mlnmr.__file__).resolve().parents[1]
COMMANDS = ("python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/ase-mlnmr demo",
            'python3 -m venv .venv && .venv/bin/pip install ".[test]" && .venv/bin/pytest')


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def snippet_folder(tmp_path_factory):
    from ase_mlnmr.demo.training_stage import demo_config
    from ase_mlnmr.examples import load_mp_al27
    from ase_mlnmr.nmr_model import NMRModel

    folder = tmp_path_factory.mktemp("readme")
    data = load_mp_al27()
    NMRModel.train(data, demo_config(data), progress=False).save(folder / "model.npz")
    (folder / "runs").mkdir()
    for k, (atoms, ms, efg) in enumerate(zip(data.structures, data.tensors["ms"], data.tensors["efg"])):
        crystal = atoms.copy()
        crystal.arrays.pop("ms", None), crystal.arrays.pop("efg", None)
        crystal.new_array("ms", ms.astype(float))  # σ − σ_core, ppm
        crystal.new_array("efg", efg.astype(float))  # a.u.
        crystal.info["magres_units"] = {"ms": "ppm", "efg": "au"}
        write(folder / "runs" / f"crystal_{k:02d}.magres", crystal, format="magres")
    glass = next(a for a in data.structures if a.get_chemical_formula() == "Al6Na8O25Si6").copy()
    glass.arrays.pop("ms", None), glass.arrays.pop("efg", None)
    write(folder / "glass.extxyz", glass)
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(40):
        frame = glass.copy()
        frame.positions += rng.normal(0.0, 0.03, frame.positions.shape)
        frames.append(frame)
    write_dump(folder / "md.dump", frames, range(0, 80, 2), {"Al": 1, "Na": 2, "O": 3, "Si": 4})
    return folder


def test_the_two_commands_are_verbatim():
    bash = blocks("bash")
    assert [b.strip() for b in bash[:2]] == list(COMMANDS)
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(COMMANDS[1])


def test_python_snippets_run(snippet_folder, monkeypatch):
    monkeypatch.chdir(snippet_folder)
    python = blocks("python")
    assert len(python) >= 5
    namespace: dict = {}
    for k, code in enumerate(python):
        try:
            exec(compile(code, f"README.md python block {k + 1}", "exec"), namespace)
        except Exception as error:  # name the block in the failure
            pytest.fail(f"README python block {k + 1} failed: {type(error).__name__}: {error}\n{code}")
    assert (snippet_folder / "my_model.npz").exists() and (snippet_folder / "al27_mas.csv").exists()
    assert (snippet_folder / "nmr" / "vibrational_scaling.json").exists()
    # values the snippets computed, against independent expectations
    assert namespace["sigma"].shape == (len(namespace["atoms"]), 3, 3)
    assert np.isnan(namespace["cq"][namespace["atoms"].numbers == 14]).all()  # Si skipped
    assert np.isfinite(namespace["cq"][namespace["atoms"].numbers == 13]).all()
    area = np.sum(namespace["frozen"].intensity) * (namespace["axis"].ppm[1] - namespace["axis"].ppm[0])
    assert area == pytest.approx(1.0, abs=1e-6)
    assert namespace["metadata"]["schema_version"] >= 1
    mqmas, step = namespace["mqmas"], namespace["o_axis"].ppm[1] - namespace["o_axis"].ppm[0]
    assert mqmas.shape == (256, 256) and mqmas.sum() * step**2 == pytest.approx(1.0, abs=1e-9)
    run_shell_snippets(snippet_folder)


def run_shell_snippets(snippet_folder: Path) -> None:
    """The ``ase-mlnmr`` lines of the README's shell blocks (after the Python blocks,
    which write the ``config.json`` they use)."""
    commands = [line for block in blocks("bash")[2:] for line in block.splitlines()
                if line.startswith("ase-mlnmr ")]
    assert commands, "no ase-mlnmr command block found in README.md"
    for line in commands:
        argv = [sys.executable, "-m", "ase_mlnmr.cli"] + shlex.split(line)[1:]
        done = subprocess.run(argv, cwd=snippet_folder, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)})
        assert done.returncode == 0, (line, done.stderr[-2000:])
    assert (snippet_folder / "my_model.npz").exists() and (snippet_folder / "parity").is_dir()
    assert (snippet_folder / "predictions" / "predictions.csv").exists()
    assert (snippet_folder / "nmr_cli" / "vibrational_scaling.json").exists()


def test_lammps_snippet_runs(snippet_folder, tmp_path):
    """The README's ``fix nmr/ml`` block, verbatim, in a 1000-step NVE run of the snippets'
    Na aluminosilicate crystal on 2 MPI ranks (pair_style zero, cold start so the atoms
    barely move): the thermo columns, the dump and the acf_file it promises are written,
    with finite values for Al and O and none for Na and Si (skipped)."""
    from lammps_plugin_helpers import built_plugin, run_lammps

    from ase_mlnmr.trajectory.correlation import read_result

    plugin = built_plugin()
    (block,) = blocks("lammps")
    shutil.copy(snippet_folder / "model.npz", tmp_path / "model.npz")
    crystal = read(snippet_folder / "glass.extxyz")
    write(tmp_path / "data.lmp", crystal, format="lammps-data", specorder=["Al", "Na", "O", "Si"],
          atom_style="atomic")
    script = (f"plugin load {plugin}\nunits metal\natom_style atomic\nboundary p p p\nread_data data.lmp\n"
              "mass 1 26.98\nmass 2 22.99\nmass 3 16.00\nmass 4 28.09\nvelocity all create 20 5 loop geom\n"
              "timestep 0.001\npair_style zero 6.0\npair_coeff * *\nneighbor 1.0 bin\nfix nve all nve\n"
              + block + "thermo 500\nrun 1000\n")
    done = run_lammps(tmp_path, script, ranks=2)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "f_nmr[1]" in done.stdout
    frames = read(tmp_path / "dump.nmr", index=":", format="lammps-dump-text")
    assert len(frames) == 2  # steps 0 and 1000
    with open(tmp_path / "dump.nmr") as handle:
        lines = handle.read().split("ITEM: ATOMS")[-1].splitlines()
    header, rows = lines[0].split(), [line.split() for line in lines[1:] if line.strip()]
    types = np.array([int(r[header.index("type")]) for r in rows])
    values = np.array([[float(v) for v in r[header.index("f_nmr[1]"):]] for r in rows])
    assert np.isfinite(values[(types == 1) | (types == 3)]).all()
    assert not np.isfinite(values[(types == 2) | (types == 4), 0]).any()  # Na, Si skipped: no σiso
    _, tables = read_result(tmp_path / "nmr_acf.csv")
    for element in ("Al", "O"):
        rows = tables[(element, "efg")]
        assert rows["lag_fs"][0] == 0 and rows["g"][0] == pytest.approx(1.0, abs=1e-12)
