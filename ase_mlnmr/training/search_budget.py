"""Resumable hyper-parameter searches: a wall-time budget and a JSON result cache.

A long search computes each expensive result through :meth:`ResultCache.get_or_compute`,
which checks :meth:`Budget.check` first and stores the result (one JSON file per name,
written atomically on :meth:`ResultCache.flush`); when the budget is used up
:class:`BudgetExceeded` stops it, and rerunning the same search reads the finished
results back and continues.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["Budget", "BudgetExceeded", "ResultCache", "canonical_json", "short_hash"]


class BudgetExceeded(RuntimeError):
    """The time budget is used up; the cache keeps what was finished."""


class Budget:
    """Wall-time budget of ``minutes`` from now (``None``: unlimited)."""

    def __init__(self, minutes: float | None) -> None:
        self.start = time.time()
        self.deadline = None if minutes is None else self.start + 60.0 * minutes

    def check(self, what: str) -> None:
        """Raise :class:`BudgetExceeded` naming ``what`` could not start."""
        if self.deadline is not None and time.time() > self.deadline:
            raise BudgetExceeded(f"time budget used up before {what}")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def short_hash(obj: Any) -> str:
    """First 12 hex digits of the SHA-1 of :func:`canonical_json` (a cache name, not security)."""
    return hashlib.sha1(canonical_json(obj).encode()).hexdigest()[:12]


class ResultCache:
    """JSON documents under one folder, by name; a document whose ``cache_version`` differs
    from ``version`` is treated as empty. Changes are written by :meth:`flush`; with
    ``folder=None`` the documents live in memory only (a search without a cache)."""

    def __init__(self, folder: str | os.PathLike | None, version: int = 1) -> None:
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.version = int(version)
        self._data: dict[str, dict] = {}
        self._dirty: set[str] = set()

    def load(self, name: str) -> dict:
        """The document ``name`` (created empty if absent); edit it in place, then :meth:`mark`."""
        if name not in self._data:
            path = None if self.folder is None else self.folder / f"{name}.json"
            data = json.loads(path.read_text()) if path is not None and path.exists() else {}
            if data.get("cache_version") != self.version:
                data = {"cache_version": self.version}
            self._data[name] = data
        return self._data[name]

    def mark(self, name: str) -> None:
        self._dirty.add(name)

    def get_or_compute(self, name: str, key: str, compute: Callable[[], Any], budget: Budget | None = None,
                       what: str = "a computation", flush: bool = True) -> Any:
        """The result stored under ``key`` in document ``name``; if absent, ``budget`` is
        checked (:class:`BudgetExceeded` names ``what``), ``compute()`` runs and its
        (JSON-able) result is stored, written at once unless ``flush`` is False."""
        results = self.load(name).setdefault("results", {})
        if key not in results:
            if budget is not None:
                budget.check(what)
            results[key] = compute()
            self.mark(name)
            if flush:
                self.flush()
        return results[key]

    def flush(self) -> None:
        """Write every marked document (temporary file, then rename)."""
        for name in sorted(self._dirty if self.folder is not None else ()):
            path = self.folder / f"{name}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data[name], indent=1, sort_keys=True))
            tmp.replace(path)
        self._dirty.clear()
