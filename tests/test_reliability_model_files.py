"""Model files on hostile input (issue 8, items 3, 4, 6): damaged archives, files that are
not model files, non-finite or mis-shaped arrays with a consistent hash, permissions and
interrupted writes."""
from __future__ import annotations

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase_mlnmr
import numpy as np
import pytest

from ase_mlnmr.cli import main
from ase_mlnmr.models.model_file import METADATA_KEY, ModelFileError, compute_hash, load_model, save_model
from ase_mlnmr.nmr_model import NMRModel

from synthetic_data import synthetic_dataset

SMALL_CONFIG = {
    "descriptor": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5},
    "ms_iso": {"n_inducing": 30},
    "efg": {"alpha": 1e-6},
    "ms_aniso": {"alpha": 1e-6},
    "ood": {"n_inducing": 30},
}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    data = synthetic_dataset(n_structures=4, n_atoms=20, seed=3)
    path = tmp_path_factory.mktemp("model") / "small.npz"
    NMRModel.train(data, SMALL_CONFIG, progress=False).save(path)
    return path


def _write_with_consistent_hash(path: Path, arrays: dict, metadata: dict) -> None:
    """An archive whose SHA-256 matches its (tampered) content: only content checks can catch it."""
    meta = {k: v for k, v in metadata.items() if k != "sha256"}
    meta["sha256"] = compute_hash(arrays, meta)
    with open(path, "wb") as handle:
        np.savez(handle, **{METADATA_KEY: np.array([json.dumps(meta)])}, **arrays)


# ------------------------------------------------------------------ item 3: content
def test_non_finite_array_with_consistent_hash_is_refused(model_file, tmp_path):
    arrays, metadata = load_model(model_file)
    name = next(n for n in sorted(arrays) if arrays[n].dtype.kind == "f" and arrays[n].size > 1)
    arrays[name] = arrays[name].copy()
    arrays[name].flat[1] = np.nan
    bad = tmp_path / "nan.npz"
    _write_with_consistent_hash(bad, arrays, metadata)
    with pytest.raises(ModelFileError, match=f"{name}.*NaN or inf"):
        load_model(bad)
    arrays[name].flat[1] = np.inf
    _write_with_consistent_hash(bad, arrays, metadata)
    with pytest.raises(ModelFileError, match="NaN or inf"):
        NMRModel.load(bad)


@pytest.fixture(scope="module")
def efg_only_model_file(tmp_path_factory) -> Path:
    """No σiso model, so the OOD model keeps arrays of its own (with σiso it shares them)."""
    data = synthetic_dataset(n_structures=4, n_atoms=20, seed=3)
    path = tmp_path_factory.mktemp("model") / "efg_only.npz"
    config = dict(SMALL_CONFIG, species={"Si": {"properties": ["efg"]}, "O": {"properties": ["efg"]}})
    NMRModel.train(data, config, progress=False).save(path)
    return path


@pytest.mark.parametrize("component", ["ms_iso", "efg", "ood"])
def test_arrays_that_do_not_fit_the_descriptor_are_refused(model_file, efg_only_model_file, tmp_path, component):
    arrays, metadata = load_model(efg_only_model_file if component == "ood" else model_file)
    if component == "ood":
        prefix = metadata["ood_components"][0]["prefix"]
    else:
        prefix = next(c["prefix"] for c in metadata["components"] if c["property"] == component)
    # drop the last feature from every per-feature array of that component, consistently,
    # so that the regressor's own consistency checks pass and only the descriptor disagrees
    n_features = len(arrays[prefix + ("feature_scale" if component == "efg" else "x_mean")])
    for name in [n for n in arrays if n.startswith(prefix)]:
        value = arrays[name]
        if value.ndim >= 1 and value.shape[-1] == n_features:
            arrays[name] = np.ascontiguousarray(value[..., :-1])
        elif value.ndim == 2 and value.shape[0] == n_features and component != "ms_iso":
            arrays[name] = np.ascontiguousarray(value[:-1])
    bad = tmp_path / f"shape_{component}.npz"
    _write_with_consistent_hash(bad, arrays, metadata)
    load_model(bad)  # the archive itself is fine ...
    with pytest.raises(ModelFileError, match="do not fit its descriptor|inconsistent"):
        NMRModel.load(bad)  # ... the model is not


# ------------------------------------------------------------------ item 4: what the file is
def _zip_with_patched_directory(source: Path, target: Path, field_offset: int, value: int) -> None:
    """Copy a zip, setting a 2-byte field of every central-directory and local header."""
    data = bytearray(source.read_bytes())
    for signature, base in ((b"PK\x01\x02", field_offset + 2), (b"PK\x03\x04", field_offset)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + base: start + base + 2] = value.to_bytes(2, "little")
            start += 4
    target.write_bytes(bytes(data))


@pytest.mark.parametrize("field,value,what", [
    (4, 99, "version"),        # "version needed to extract" 9.9: NotImplementedError: zip file version
    (6, 1, "encrypted"),       # flag bit 0: RuntimeError: File ... is encrypted
    (8, 77, "compression"),    # unknown compression method: NotImplementedError
])
def test_damaged_zip_directory_gives_model_file_error(model_file, tmp_path, field, value, what):
    bad = tmp_path / f"damaged_{what}.npz"
    _zip_with_patched_directory(model_file, bad, field, value)
    with pytest.raises(ModelFileError, match="damaged|corrupt|truncated"):
        NMRModel.load(bad)


@pytest.mark.parametrize("content,kind", [
    (pickle.dumps({"weights": [1.0, 2.0]}), "pickle"),
    (b"sigma_iso 300.0\nthis is a text file\n", "text file"),
    (b"", "empty file"),
], ids=["pickle", "text", "empty"])
def test_file_that_is_not_a_model_says_so_without_suggesting_pickle(tmp_path, content, kind):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as error:
        NMRModel.load(path)
    message = str(error.value)
    assert "not an ase_mlnmr model file" in message and kind in message
    assert "allow_pickle" not in message


def test_bare_npy_and_cli_report(tmp_path, capsys):
    path = tmp_path / "weights.npy"
    np.save(path, np.arange(3.0))
    with pytest.raises(ModelFileError, match="bare .npy"):
        load_model(path)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps([1, 2, 3]))
    structure = tmp_path / "s.xyz"
    structure.write_text("1\n\nSi 0 0 0\n")
    assert main(["predict", str(pickled), str(structure), "-o", str(tmp_path / "p"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "not an ase_mlnmr model file" in err and "allow_pickle" not in err and "Traceback" not in err


# ------------------------------------------------------------------ item 6: permissions and interrupts
@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_model_file_honours_the_umask(tmp_path, umask, expected):
    previous = os.umask(umask)
    try:
        path = save_model(tmp_path / "m.npz", {"w": np.ones(3)}, {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == expected


def test_overwriting_keeps_the_existing_permissions(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    path.chmod(0o644)
    previous = os.umask(0o077)
    try:
        save_model(path, {"w": np.ones(3)}, {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    load_model(path)


def test_keyboard_interrupt_inside_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(path, {"w": np.ones(3)}, {})
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(path, {"w": np.zeros(3)}, {})
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert path.read_bytes() == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_save_leaves_no_temporary_file(tmp_path, signum):
    """A signal arriving while the archive is written (the writer is slowed down so that
    it surely does) must not leave ``.m.npz.*.tmp`` behind."""
    ready = tmp_path / "writing"
    script = textwrap.dedent(f"""
        import time, numpy as np
        real_savez = np.savez
        def slow_savez(*args, **kwargs):
            open({str(ready)!r}, "w").close()
            time.sleep(1.5)
            return real_savez(*args, **kwargs)
        np.savez = slow_savez
        from ase_mlnmr.models.model_file import save_model
        save_model({str(tmp_path / "m.npz")!r}, {{"w": np.ones(1000)}}, {{}})
        time.sleep(30)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=Path(ase_mlnmr.__file__).resolve().parents[1],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(6000):
            if ready.exists() or process.poll() is not None:
                break
            time.sleep(0.01)
        assert ready.exists(), process.communicate()[1][-2000:]
        process.send_signal(signum)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "writing")
    assert left in ([], ["m.npz"])
    if left:
        load_model(tmp_path / "m.npz")  # complete, never half-written
