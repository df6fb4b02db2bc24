"""Tests of the self-describing .npz model file."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ase_mlnmr.models.linear import EquivariantRidge
from ase_mlnmr.models.model_file import (
    SCHEMA_VERSION,
    ModelFileError,
    load_estimator,
    load_model,
    make_provenance,
    save_estimator,
    save_model,
)
from ase_mlnmr.models.nystrom import NystromKernelRidge

MARKER = np.array([1.2345678901234567e-3, 9.87654321e5, -4.4444444444e-7] * 7)


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "weights": rng.normal(size=(20, 3)),
        "marker": MARKER.copy(),
        "indices": np.arange(11, dtype=np.int64),
        "scale32": rng.random(4).astype(np.float32),
        "flags": np.array([True, False, True]),
        "species": np.array(["Si", "O", "Na"]),
        "scalar": np.array(2.5),
    }


def _metadata() -> dict:
    return {
        "descriptor": {"type": "soap", "rcut": 5.5, "nmax": 8, "lmax": 6, "sigma": 0.4},
        "species": {"centre": "Si", "neighbours": ["O", "Si", "Na"]},
        "units": {"target": "ppm", "features": "dimensionless"},
        "calibration": {"29Si": {"a": 1.02, "sigma_ref": 316.3}},
        "provenance": {"files": ["a.magres"], "file_sha256": {"a.magres": "0" * 64}},
        "cv_metrics": {"MAE": 0.8, "RMSE": 1.1, "%RMSE": 9.5},
        "model": {"class": "Test", "ridge": 1e-6},
    }


def _rewrite(path: Path, arrays: dict[str, np.ndarray], meta_text: str, **extra) -> None:
    """Write an npz by hand (bypassing save_model) with the given metadata string."""
    with open(path, "wb") as fh:
        np.savez(fh, __metadata__=np.array([meta_text]), **arrays, **extra)


def _raw_meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(str(npz["__metadata__"][0]))


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    arrays, meta = _arrays(), _metadata()
    assert save_model(path, arrays, meta) == path
    loaded, lmeta = load_model(path)
    assert set(loaded) == set(arrays)
    for name, arr in arrays.items():
        assert loaded[name].dtype == arr.dtype and loaded[name].shape == arr.shape
        np.testing.assert_array_equal(loaded[name], arr)
    assert lmeta["schema"] == "ase_mlnmr.model"
    assert lmeta["schema_version"] == SCHEMA_VERSION == 2
    for key in ("descriptor", "species", "units", "calibration", "cv_metrics", "model"):
        assert lmeta[key] == meta[key]
    assert lmeta["provenance"]["files"] == ["a.magres"]
    assert "date" in lmeta["provenance"] and "package_version" in lmeta["provenance"]
    assert len(lmeta["sha256"]) == 64
    # no temporary files left behind
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    # the file is a plain zip of .npy members without pickles
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted([f"{n}.npy" for n in arrays] + ["__metadata__.npy"])


def test_hash_follows_documented_recipe(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    arrays = _arrays()
    save_model(path, arrays, _metadata())
    meta = _raw_meta(path)
    stored = meta.pop("sha256")

    def frame(h, data: bytes) -> None:
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    h = hashlib.sha256()
    frame(h, b"ase_mlnmr.model")
    frame(h, json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        frame(h, name.encode())
        frame(h, a.dtype.str.encode())
        frame(h, json.dumps(list(a.shape)).encode())
        frame(h, a.tobytes(order="C"))
    assert h.hexdigest() == stored


def test_missing_and_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(junk)
    assert issubclass(ModelFileError, ValueError)


def test_truncated(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    save_model(path, _arrays(), _metadata())
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated"):
            load_model(path)


def test_flipped_byte_in_array(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    save_model(path, _arrays(), _metadata())
    data = bytearray(path.read_bytes())
    offset = bytes(data).find(MARKER.tobytes())
    assert offset > 0
    data[offset + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(path)


def test_modified_array_in_valid_archive(tmp_path: Path) -> None:
    """A well-formed archive (valid zip CRCs) whose array differs from the hashed one."""
    path = tmp_path / "m.npz"
    save_model(path, _arrays(), _metadata())
    loaded, _ = load_model(path)
    with np.load(path, allow_pickle=False) as npz:
        text = str(npz["__metadata__"][0])
    loaded["weights"][3, 1] += 1e-12
    _rewrite(path, loaded, text)
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(path)
    # a changed dtype with equal values is also caught
    loaded = dict(_arrays())
    loaded["indices"] = loaded["indices"].astype(np.int32)
    _rewrite(path, loaded, text)
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(path)


def test_tampered_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    arrays = _arrays()
    save_model(path, arrays, _metadata())
    meta = _raw_meta(path)
    meta["calibration"]["29Si"]["sigma_ref"] = 320.0
    _rewrite(path, arrays, json.dumps(meta))
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(path)
    meta = _raw_meta(path)
    del meta["sha256"]
    _rewrite(path, arrays, json.dumps(meta))
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(path)
    _rewrite(path, arrays, "{not json")
    with pytest.raises(ModelFileError, match="corrupt metadata"):
        load_model(path)


def test_schema_checks(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    arrays = _arrays()
    save_model(path, arrays, _metadata())
    meta = _raw_meta(path)
    newer = dict(meta, schema_version=SCHEMA_VERSION + 1)
    _rewrite(path, arrays, json.dumps(newer))
    with pytest.raises(ModelFileError, match="written by a newer ase_mlnmr"):
        load_model(path)
    other = dict(meta, schema="someone.else")
    _rewrite(path, arrays, json.dumps(other))
    with pytest.raises(ModelFileError, match="schema"):
        load_model(path)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ModelFileError, match="missing '__metadata__'"):
        load_model(path)


def test_pickled_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    arrays = _arrays()
    save_model(path, arrays, _metadata())
    text = json.dumps(_raw_meta(path))
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = {"a": 1}, [1, 2]
    _rewrite(path, arrays, text, payload=evil)
    with pytest.raises(ModelFileError, match="object array"):
        load_model(path)
    # and save_model refuses to write one
    with pytest.raises(ModelFileError, match="object"):
        save_model(tmp_path / "x.npz", {"payload": evil}, {})


def test_failed_save_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    save_model(path, _arrays(), _metadata())
    before = path.read_bytes()
    with pytest.raises(ModelFileError, match="JSON"):
        save_model(path, _arrays(), {"cv_metrics": {"RMSE": float("nan")}})
    with pytest.raises(ModelFileError):
        save_model(path, {"__bad": np.zeros(2)}, {})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_provenance_hashes(tmp_path: Path) -> None:
    a = tmp_path / "a.extxyz"
    a.write_bytes(b"hello tensors\n")
    prov = make_provenance([a], dataset="synthetic")
    assert prov["file_sha256"][str(a)] == hashlib.sha256(b"hello tensors\n").hexdigest()
    assert prov["dataset"] == "synthetic" and prov["files"] == [str(a)]


def test_estimators_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = np.sin(X[:, 0]) + X[:, 1] ** 2
    kr = NystromKernelRidge(50, 1.0, 1e-4).fit(X, y)
    save_estimator(tmp_path / "kr.npz", kr, {"units": {"target": "ppm"}})
    kr2, meta = load_estimator(tmp_path / "kr.npz")
    assert isinstance(kr2, NystromKernelRidge) and meta["units"] == {"target": "ppm"}
    np.testing.assert_array_equal(kr2.predict(X[:10]), kr.predict(X[:10]))
    np.testing.assert_array_equal(kr2.out_of_domain(X[:10] + 3), kr.out_of_domain(X[:10] + 3))

    F = rng.normal(size=(30, 5, 4))
    eq = EquivariantRidge(2, 1e-3).fit(F, F @ rng.normal(size=4))
    save_estimator(tmp_path / "eq.npz", eq, {})
    eq2, meta = load_estimator(tmp_path / "eq.npz")
    np.testing.assert_array_equal(eq2.coef_, eq.coef_)
    assert meta["model"]["class"] == "EquivariantRidge" and meta["model"]["lam"] == 2
