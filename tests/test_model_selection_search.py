"""The generic parts of the model-selection layer the benchmarks call: the fold aggregate,
the α walk, the staged (greedy coordinate) search and the resumable result cache."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ase_mlnmr.training.model_selection import fold_statistics, grid_walk, staged_search
from ase_mlnmr.training.search_budget import Budget, BudgetExceeded, ResultCache


def test_fold_statistics_by_hand_with_a_missing_and_a_nan_fold() -> None:
    records = [{"O": {"mae": 1.0, "eta": 0.1}}, {"O": {"mae": 3.0, "eta": math.nan}}, {"O": {"mae": 2.0}}]
    stats = fold_statistics(records)
    assert stats["O"]["mae"] == {"mean": 2.0, "std": 1.0, "n_folds": 3, "values": [1.0, 3.0, 2.0]}
    eta = stats["O"]["eta"]  # NaN left out of mean and std; one value left: std 0
    assert eta["mean"] == 0.1 and eta["std"] == 0.0 and eta["n_folds"] == 2


@pytest.mark.parametrize("minimum", [0, 3, 9, 16])
def test_grid_walk_finds_the_minimum_of_a_u_shaped_curve(minimum: int) -> None:
    grid = np.arange(17)
    calls: list[int] = []

    def score(i: int) -> float:
        calls.append(i)
        return float((grid[i] - minimum) ** 2 + 1.0)

    index, value, seen = grid_walk(score, len(grid), start=8)
    assert index == int(np.argmin((grid - minimum) ** 2)) and value == 1.0
    assert len(calls) == len(set(calls)) == len(seen)  # each point scored once
    assert set(seen) == set(range(min(8, minimum) - 1, max(8, minimum) + 2)) & set(range(17))


def test_grid_walk_ties_go_down_and_small_gains_stop_it() -> None:
    assert grid_walk(lambda i: [1.0, 2.0, 1.0][i], 3, start=1)[0] == 0
    curve = [1.0, 0.9995, 1.0005]  # a 0.05 % gain is below min_gain = 0.1 %
    assert grid_walk(lambda i: curve[i], 3, start=1, min_gain=1e-3)[0] == 1
    assert grid_walk(lambda i: curve[i], 3, start=2)[0] == 1
    with pytest.raises(ValueError, match="start index 3 outside 0..2"):
        grid_walk(lambda i: 0.0, 3, start=3)


def test_staged_search_reaches_the_optimum_of_a_separable_score() -> None:
    """One pass of one-parameter stages finds the exhaustive optimum of a separable score."""
    values = {"a": [1, 2, 3, 4], "b": [0.1, 0.2, 0.3], "c": [True, False]}
    targets = {"x": {"a": 3, "b": 0.1, "c": False}, "y": {"a": 1, "b": 0.3, "c": True}}

    def cost(track, setting):
        t = targets[track]
        return (setting["a"] - t["a"]) ** 2 + 10 * (setting["b"] - t["b"]) ** 2 + (setting["c"] != t["c"])

    def score(track, setting, hint):
        return cost(track, setting), hint + 1, {"cost": cost(track, setting)}

    state, history = staged_search(["x", "y"], {"a": 2, "b": 0.2, "c": True}, list(values.items()), score, hint=0)
    for track in ("x", "y"):
        exhaustive = min((dict(zip(values, combo)) for combo in itertools.product(*values.values())),
                         key=lambda setting: cost(track, setting))
        assert state[track]["setting"] == exhaustive and state[track]["score"] == 0
        assert len(history[track]) == 1 + 4 + 3 + 2
        assert history[track][0]["stage"] == "start" and history[track][0]["setting"] == {"a": 2, "b": 0.2, "c": True}
    # the hint travels with the best setting: every stage improved track "x" (start, a, b, c)
    assert state["x"]["hint"] == 4


def test_staged_search_groups_candidates_and_restricts_stages_to_tracks() -> None:
    order: list[tuple[str, int]] = []

    def score(track, setting, hint):
        order.append((track, setting["r"]))
        return abs(setting["r"] - 5) + abs(setting["s"]), hint, {}

    stages = [("r", [6, 4, 5]), ("s", [0, 1], ["late"])]
    state, history = staged_search(["early", "late"], {"r": 4, "s": 1}, stages, score,
                                   group_key=lambda setting: f"{setting['r']:02d}")
    # stage r: candidates sorted by group (r = 4, 5, 6), then track order
    assert order[2:8] == [("early", 4), ("late", 4), ("early", 5), ("late", 5), ("early", 6), ("late", 6)]
    assert len(history["early"]) == 4 and len(history["late"]) == 6  # stage s ran for "late" only
    assert state["early"]["setting"] == {"r": 5, "s": 1} and state["late"]["setting"] == {"r": 5, "s": 0}


def test_result_cache_computes_once_resumes_and_respects_the_budget(tmp_path) -> None:
    calls: list[int] = []

    def compute() -> dict:
        calls.append(1)
        return {"mae": 0.25}

    with pytest.raises(BudgetExceeded, match="point A"):
        ResultCache(tmp_path).get_or_compute("doc", "A", compute, Budget(minutes=0.0), "point A")
    assert calls == [] and not list(tmp_path.glob("*.json"))
    first = ResultCache(tmp_path).get_or_compute("doc", "A", compute)
    again = ResultCache(tmp_path).get_or_compute("doc", "A", compute, Budget(minutes=0.0), "point A")
    assert first == again == {"mae": 0.25} and calls == [1]
    memory = ResultCache(None)
    assert memory.get_or_compute("doc", "B", compute) == {"mae": 0.25}
    assert memory.get_or_compute("doc", "B", compute) == {"mae": 0.25} and calls == [1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]
