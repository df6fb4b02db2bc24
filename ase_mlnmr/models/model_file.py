"""Self-describing model files: one ``.npz`` (no pickle) per model.

Layout: the model's NumPy arrays under their own names, plus ``__metadata__``, a
one-element unicode array holding a JSON object::

    schema           "ase_mlnmr.model"
    schema_version   int (SCHEMA_VERSION)
    model            estimator class and hyper-parameters (``to_arrays`` params)
    descriptor       descriptor hyper-parameters (opaque dict from the caller)
    species          e.g. {"centre": "Si", "neighbours": ["O", "Si", "Na"]} (caller's choice)
    units            e.g. {"target": "ppm"}
    calibration      optional, per nucleus {"a": slope, "sigma_ref": ppm}
                     (delta_iso = -a (sigma_iso - sigma_ref))
    provenance       files, SHA-256 of the inputs, date (UTC), package version, ...
    cv_metrics       cross-validation metrics
    sha256           integrity hash (below)

The integrity hash is SHA-256 over: the canonical JSON of the metadata without the
``sha256`` key (sorted keys, compact separators), then for every array in sorted name
order its name, dtype string (e.g. ``<f8``), shape and C-order bytes, each item framed
by its length so that no two different contents give the same byte stream.

Files are written atomically (temporary file in the same directory, fsync, rename) with
the permissions a plain ``open()`` would give: those of the file replaced, else 0666
minus the umask. SIGINT/SIGTERM arriving during the write are held until the file is in
place or the temporary file removed, so an interrupt never leaves a temporary file.

Files are read with ``allow_pickle=False``; every failure to read raises
:class:`ModelFileError`: a file that is not a zip archive (a pickle, a bare ``.npy``,
text), a damaged archive (bad directory, unsupported zip version or compression,
encrypted members), missing or foreign metadata, a newer schema, object arrays, a hash
mismatch, and (even when the hash is consistent) NaN or inf in a floating-point array.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import signal
import stat
import struct
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "METADATA_KEY",
    "ModelFileError",
    "save_model",
    "load_model",
    "compute_hash",
    "make_provenance",
    "package_version",
    "save_estimator",
    "load_estimator",
    "check_loaded_component",
]

SCHEMA = "ase_mlnmr.model"
#: 2: property models may carry a committee (``member_weights`` / ``member_scaled_weights``
#: arrays and ``committee_calibration``); version-1 files load without one.
SCHEMA_VERSION = 2
METADATA_KEY = "__metadata__"
_HASH_KEY = "sha256"
_ALLOWED_KINDS = set("biufcUS")
#: What reading a damaged archive can raise (zipfile, zlib and numpy's format reader).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError,
                   OSError, ValueError, KeyError, zlib.error, struct.error, UnicodeDecodeError)
#: Leading bytes of a zip archive (local file header, or the end record of an empty one).
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class ModelFileError(ValueError):
    """A model file cannot be written or read (missing, truncated, corrupt, wrong schema)."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"array of dtype {obj.dtype} in metadata")
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _canonical_json(metadata: Mapping[str, Any]) -> str:
    try:
        return json.dumps(
            metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_json_default
        )
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"metadata is not JSON serialisable (use None for missing numbers): {exc}") from exc


def _c_order(arr: np.ndarray) -> np.ndarray:
    """C-contiguous array with the same shape (``np.ascontiguousarray`` turns 0-d into 1-d)."""
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _frame(digest: "hashlib._Hash", data: bytes) -> None:
    digest.update(struct.pack("<Q", len(data)))
    digest.update(data)


def compute_hash(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the metadata without ``sha256`` and all arrays (sorted names)."""
    meta = {k: v for k, v in metadata.items() if k != _HASH_KEY}
    digest = hashlib.sha256()
    _frame(digest, SCHEMA.encode())
    _frame(digest, _canonical_json(meta).encode("utf-8"))
    for name in sorted(arrays):
        arr = _c_order(np.asarray(arrays[name]))
        _frame(digest, name.encode("utf-8"))
        _frame(digest, arr.dtype.str.encode("ascii"))
        _frame(digest, json.dumps(list(arr.shape)).encode("ascii"))
        _frame(digest, arr.tobytes(order="C"))
    return digest.hexdigest()


def package_version() -> str:
    """Installed ase_mlnmr version ('unknown' when not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("ase_mlnmr")
    except Exception:  # PackageNotFoundError or broken metadata
        try:
            import ase_mlnmr

            return str(getattr(ase_mlnmr, "__version__", "unknown"))
        except Exception:
            return "unknown"


def make_provenance(
    files: Iterable[str | os.PathLike] = (),
    *,
    hashes: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Training provenance: input files with SHA-256 (computed if not given), UTC date,
    package / numpy / ase versions, plus any ``extra`` JSON-able entries."""
    from ..training.dataset import sha256_file

    names = [os.fspath(f) for f in files]
    known = dict(hashes or {})
    file_hashes = {name: known.get(name) or sha256_file(name) for name in names}
    try:
        import ase

        ase_version = ase.__version__
    except Exception:
        ase_version = "unknown"
    prov = {
        "files": names,
        "file_sha256": file_hashes,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": package_version(),
        "numpy_version": np.__version__,
        "ase_version": ase_version,
    }
    prov.update(extra)
    return prov


def _check_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise ModelFileError(f"invalid array name {name!r} (must be a non-empty str not starting with '__')")
        if "/" in name or "\\" in name:
            raise ModelFileError(f"invalid array name {name!r} (no path separators)")
        arr = np.asarray(value)
        if arr.dtype.kind not in _ALLOWED_KINDS or arr.dtype.fields is not None:
            raise ModelFileError(
                f"array {name!r} has dtype {arr.dtype}: only numeric, bool and fixed-width string "
                "arrays can be stored (object arrays would need pickle)"
            )
        out[name] = _c_order(arr)
    return out


def save_model(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any]
) -> Path:
    """Write ``arrays`` and ``metadata`` to ``path`` (exactly that name) atomically.

    ``schema``/``schema_version`` are set, ``provenance.date`` and
    ``provenance.package_version`` filled in if absent, and ``sha256`` computed.
    Returns the path written.
    """
    path = Path(path)
    data = _check_arrays(arrays)
    meta = {k: v for k, v in dict(metadata).items() if k != _HASH_KEY}
    meta["schema"] = SCHEMA
    meta["schema_version"] = SCHEMA_VERSION
    prov = dict(meta.get("provenance") or {})
    prov.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    prov.setdefault("package_version", package_version())
    meta["provenance"] = prov
    meta = json.loads(_canonical_json(meta))  # plain JSON types, as they will be read back
    meta[_HASH_KEY] = compute_hash(data, meta)
    text = _canonical_json(meta)

    directory = path.parent if str(path.parent) else Path(".")
    mode = _mode_for(path)
    with _interrupts_held():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise ModelFileError(f"cannot write the model file {path}: {exc}") from exc
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **{METADATA_KEY: np.array([text])}, **data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    return path


def _mode_for(path: Path) -> int:
    """Permission bits a plain ``open(path, 'w')`` gives: those of the existing file,
    else 0o666 without the process umask (``mkstemp`` alone would give 0o600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def _interrupts_held():
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to the handlers that
    were in place, so that a temporary file is always either renamed into place or
    removed. (Handlers rather than a signal mask: a process-directed signal would reach
    the BLAS threads, which do not block it.) No-op off the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


def load_model(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a model file; returns ``(arrays, metadata)``.

    Raises :class:`ModelFileError` when the file is missing, truncated or not a zip,
    lacks metadata, has another schema, a newer schema version, object arrays, or
    fails the integrity check (corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    _check_is_zip(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except _ARCHIVE_ERRORS as exc:
        raise ModelFileError(
            f"{path}: not a readable model file (truncated or damaged .npz zip archive: {type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path}: not an .npz archive (a bare .npy array?)")
    with npz:
        if METADATA_KEY not in npz.files:
            raise ModelFileError(f"{path}: missing '{METADATA_KEY}': not an ase_mlnmr model file")
        raw_meta = _read_member(npz, METADATA_KEY, path)
        if raw_meta.dtype.kind != "U" or raw_meta.size != 1:
            raise ModelFileError(f"{path}: '{METADATA_KEY}' must be a one-element string array")
        try:
            metadata = json.loads(str(raw_meta.reshape(-1)[0]))
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{path}: corrupt metadata (invalid JSON): {exc}") from exc
        if not isinstance(metadata, dict):
            raise ModelFileError(f"{path}: corrupt metadata (not a JSON object)")
        schema = metadata.get("schema")
        if schema != SCHEMA:
            raise ModelFileError(f"{path}: schema is {schema!r}, expected {SCHEMA!r}: not an ase_mlnmr model file")
        version = metadata.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ModelFileError(f"{path}: invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise ModelFileError(
                f"{path}: written by a newer ase_mlnmr (schema_version {version}, this version reads "
                f"up to {SCHEMA_VERSION}); upgrade ase_mlnmr to load it"
            )
        arrays = {name: _read_member(npz, name, path) for name in npz.files if name != METADATA_KEY}
    stored = metadata.get(_HASH_KEY)
    if not isinstance(stored, str):
        raise ModelFileError(f"{path}: metadata has no '{_HASH_KEY}' integrity hash")
    actual = compute_hash(arrays, metadata)
    if actual != stored:
        raise ModelFileError(
            f"{path}: corrupt or modified model file: SHA-256 mismatch (stored {stored[:12]}..., computed {actual[:12]}...)"
        )
    for name, arr in arrays.items():
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise ModelFileError(
                f"{path}: array {name!r} holds {int(np.count_nonzero(~np.isfinite(arr)))} NaN or inf values: "
                "the model would predict NaN; refusing to load it"
            )
    return arrays, metadata


def _check_is_zip(path: Path) -> None:
    """Refuse, by its first bytes, a file that is not a zip archive, saying what it looks like."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_ZIP_MAGIC):
        return
    if head.startswith(b"\x93NUMPY"):
        kind = "a bare .npy array"
    elif head[:1] == b"\x80" or head.startswith((b"(dp", b"(lp", b"cnumpy", b"ccopy_reg")):
        kind = "a Python pickle, which can run code and is never loaded"
    elif not head:
        kind = "an empty file"
    elif all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        kind = f"a text file starting {head.decode('ascii')!r}"
    else:
        kind = f"binary data starting {head!r}"
    raise ModelFileError(
        f"{path}: not an ase_mlnmr model file: not a readable model file ({kind}; "
        "model files are .npz zip archives written by NMRModel.save)"
    )


def _read_member(npz: "np.lib.npyio.NpzFile", name: str, path: Path) -> np.ndarray:
    try:
        arr = npz[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ModelFileError(
                f"{path}: array {name!r} is an object array (needs pickle); refusing to load it"
            ) from exc
        raise ModelFileError(f"{path}: corrupt array {name!r}: {exc}") from exc
    except _ARCHIVE_ERRORS as exc:
        raise ModelFileError(
            f"{path}: corrupt or truncated archive member {name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in _ALLOWED_KINDS:
        raise ModelFileError(f"{path}: array {name!r} has unsupported dtype")
    return arr


def check_loaded_component(path: str | os.PathLike, label: str, descriptor: Any, regressor: Any,
                           out_of_domain: bool = False) -> None:
    """Probe a loaded (descriptor, regressor) pair on one all-zero feature row (a centre
    without neighbours): arrays whose shapes do not fit the descriptor, or that give a
    non-finite prediction, raise :class:`ModelFileError` naming the component ``label``."""
    n_features = descriptor.n_features
    try:
        if out_of_domain:
            value = regressor.out_of_domain(np.zeros((1, n_features)))
        elif hasattr(descriptor, "fold_weights"):
            folded, two_body = descriptor.fold_weights(regressor.coef_)
            value = np.concatenate([folded.ravel(), [] if two_body is None else two_body])
        else:
            value = regressor.predict(np.zeros((1, n_features)))
            if np.shape(value)[0] != 1:
                raise ValueError(f"prediction of shape {np.shape(value)} for one row")
    except (ValueError, IndexError, TypeError) as exc:
        raise ModelFileError(
            f"{path}: component {label}: arrays do not fit its descriptor ({n_features} features): {exc}"
        ) from exc
    if not np.all(np.isfinite(value)):
        raise ModelFileError(f"{path}: component {label} predicts NaN or inf: refusing to load it")


# ------------------------------------------------------------------ estimators
def _estimator_classes() -> dict[str, type]:
    from .linear import EquivariantRidge, RidgeRegression
    from .nystrom import NystromKernelRidge

    return {cls.__name__: cls for cls in (NystromKernelRidge, RidgeRegression, EquivariantRidge)}


def save_estimator(path: str | os.PathLike, estimator: Any, metadata: Mapping[str, Any] | None = None) -> Path:
    """Save a fitted estimator (anything with ``to_arrays()``); its params go to ``metadata['model']``."""
    arrays, params = estimator.to_arrays()
    meta = dict(metadata or {})
    meta["model"] = params
    return save_model(path, arrays, meta)


def load_estimator(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Load a file written by :func:`save_estimator`: ``(estimator, metadata)``."""
    arrays, metadata = load_model(path)
    params = metadata.get("model")
    if not isinstance(params, dict) or "class" not in params:
        raise ModelFileError(f"{path}: metadata has no 'model' entry naming the estimator class")
    classes = _estimator_classes()
    if params["class"] not in classes:
        raise ModelFileError(f"{path}: unknown estimator class {params['class']!r}")
    try:
        estimator = classes[params["class"]].from_arrays(arrays, params)
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ModelFileError(f"{path}: arrays do not match a {params['class']}: {exc}") from exc
    return estimator, metadata
