"""Grid search over dotted config keys: checked before any fit, resumable from its cache
under a time budget."""
from __future__ import annotations

import pytest

from ase_mlnmr.training.config import ConfigError
from ase_mlnmr.training.model_selection import config_with, grid_search_model
from ase_mlnmr.training.search_budget import Budget, BudgetExceeded, ResultCache

from synthetic_data import synthetic_dataset

CONFIG = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
          "species": {"O": {"properties": ["efg"]}}, "ood": {"n_inducing": 30}}


def test_dotted_keys_are_checked():
    with pytest.raises(ConfigError, match="alhpa"):
        config_with(CONFIG, {"efg.alhpa": 1e-3})
    with pytest.raises(ConfigError, match="species.O.descriptor.r_cut"):
        config_with(CONFIG, {"species.O.descriptor.r_cut": "far"})
    assert config_with(CONFIG, {"species.O.descriptor.r_cut": 4.0})["species"]["O"]["descriptor"]["r_cut"] == 4.0


def test_grid_search_rejects_a_bad_grid_point_before_any_fit(monkeypatch):
    import ase_mlnmr.training.model_selection as model_selection

    def no_fit(*args, **kwargs):
        raise AssertionError("a fit ran before the grid was checked")

    monkeypatch.setattr(model_selection, "cross_validate_model", no_fit)
    with pytest.raises(ConfigError, match="efg.alpha"):
        grid_search_model(synthetic_dataset(n_structures=4, n_atoms=12), CONFIG, {"efg.alpha": [1e-3, -1.0]},
                          score=("efg", "O", "efg_mae_au"), n_splits=2)


def test_grid_search_resumes_from_its_cache_within_a_spent_budget(tmp_path):
    data = synthetic_dataset(n_structures=4, n_atoms=12, seed=3)
    grid = {"efg.alpha": [1e-3, 1e2]}
    options = dict(score=("efg", "O", "efg_mae_au"), n_splits=2)
    spent = Budget(minutes=0.0)
    with pytest.raises(BudgetExceeded):
        grid_search_model(data, CONFIG, grid, cache=ResultCache(tmp_path), budget=spent, **options)
    first = grid_search_model(data, CONFIG, grid, cache=ResultCache(tmp_path), **options)
    again = grid_search_model(data, CONFIG, grid, cache=ResultCache(tmp_path), budget=spent, **options)
    assert again["table"] == first["table"] and again["best"] == first["best"]
