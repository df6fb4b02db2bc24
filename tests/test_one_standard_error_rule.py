"""The one-standard-error rule of model selection (docs/protocols/venetos_model_selection.md)
against hand-worked examples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ase_mlnmr.training.model_selection import one_standard_error_choice


def larger_ridge_first(candidate: tuple[float, int]) -> tuple[float, int]:
    """Candidates (ridge, n_features): larger ridge first, then fewer features."""
    ridge, n_features = candidate
    return (-ridge, n_features)


def test_one_standard_error_differs_from_argmin() -> None:
    # best (0.01, 10): folds 1.0 1.2 1.4 1.6, mean 1.3; deviations ±0.3, ±0.1 ->
    # sample variance (0.09 + 0.01 + 0.01 + 0.09) / 3 = 0.2 / 3, SE = sqrt(0.2 / 3) / 2 = 0.129099
    fold_scores = {
        (0.01, 10): [1.0, 1.2, 1.4, 1.6],  # mean 1.30 (argmin)
        (0.1, 10): [1.3, 1.4, 1.4, 1.5],   # mean 1.40 <= 1.429: within, larger ridge
        (1.0, 10): [1.5, 1.4, 1.4, 1.5],   # mean 1.45 > 1.429: outside, largest ridge
        (0.1, 20): [1.3, 1.4, 1.4, 1.4],   # mean 1.375: within, same ridge, more features
    }
    result = one_standard_error_choice(fold_scores, larger_ridge_first)
    assert result.best == (0.01, 10)
    assert result.best_score == pytest.approx(1.3, abs=1e-12)
    assert result.standard_error == pytest.approx(math.sqrt(0.2 / 3) / 2, abs=1e-12)
    assert result.threshold == pytest.approx(1.3 + math.sqrt(0.2 / 3) / 2, abs=1e-12)
    assert result.chosen == (0.1, 10)  # argmin would give (0.01, 10)
    assert result.within == [(0.1, 10), (0.1, 20), (0.01, 10)]


def test_standard_error_is_that_of_the_best_point() -> None:
    # the noisy candidate's own SE (about 0.58) would let it in; the best point's (0.005) does not
    fold_scores = {
        (0.01, 10): [1.00, 1.01, 1.00, 1.01],  # mean 1.005
        (1.0, 10): [0.0, 2.0, 0.1, 2.1],       # mean 1.05: outside 1.005 + SE_best
    }
    result = one_standard_error_choice(fold_scores, larger_ridge_first)
    # sample std of (1.00, 1.01, 1.00, 1.01): deviations ±0.005, variance 4 · 0.005² / 3
    assert result.standard_error == pytest.approx(math.sqrt(4 * 0.005**2 / 3) / 2, abs=1e-12)
    assert result.chosen == (0.01, 10)
    assert result.within == [(0.01, 10)]


def test_ties_in_the_order_go_to_the_lower_score_then_the_first_given() -> None:
    fold_scores = {  # binary fractions: the means are exact
        "a": [1.0, 2.0, 1.0, 2.0],      # mean 1.5 (best), SE = sqrt(1/3) / 2 = 0.2887
        "b": [1.75, 1.75, 1.75, 1.75],  # mean 1.75, within
        "c": [1.5, 1.75, 1.5, 1.75],    # mean 1.625, within
        "d": [1.75, 1.5, 1.75, 1.5],    # mean 1.625, within, same key and score as "c"
    }
    same_key = {"a": 1, "b": 0, "c": 0, "d": 0}
    result = one_standard_error_choice(fold_scores, same_key.__getitem__)
    assert result.chosen == "c"
    assert result.within == ["c", "d", "b", "a"]


def test_ties_for_the_best_score_go_by_the_order() -> None:
    # equal means 1.5; the order prefers "wide", whose SE (0.2887) admits "next" (mean 1.75),
    # which the SE of "narrow" (0.0722) would not
    fold_scores = {"narrow": [1.375, 1.625, 1.375, 1.625], "wide": [1.0, 2.0, 1.0, 2.0], "next": [1.75] * 4}
    key = {"narrow": 1, "wide": 0, "next": -1}
    result = one_standard_error_choice(fold_scores, key.__getitem__)
    assert result.best == "wide"
    assert result.chosen == "next"


def test_non_finite_candidates_are_left_out() -> None:
    fold_scores = {"nan": [np.nan, 0.0, 0.0, 0.0], "ok": [1.0, 1.0, 1.0, 1.0]}
    result = one_standard_error_choice(fold_scores, lambda c: 0)
    assert result.chosen == "ok" and result.standard_error == 0.0


@pytest.mark.parametrize("fold_scores, message", [
    ({"a": [1.0]}, "same K >= 2 folds"),
    ({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]}, "same K >= 2 folds"),
    ({}, "same K >= 2 folds"),
    ({"a": [np.inf, 1.0]}, "no candidate has finite scores"),
])
def test_bad_input_is_named(fold_scores, message) -> None:
    with pytest.raises(ValueError, match=message):
        one_standard_error_choice(fold_scores, lambda c: 0)
