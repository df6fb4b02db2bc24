"""Cross-validation over structures, grid search and learning curves of NMR models."""
from __future__ import annotations

import numpy as np

from ase_mlnmr.cli import main
from ase_mlnmr.training.model_selection import config_with, cross_validate_model, grid_search_model, learning_curve_model
from ase_mlnmr.nmr_model import NMRModel

from synthetic_data import synthetic_dataset

CONFIG = {"descriptor": {"r_cut": 4.5, "n_max": 4, "l_max": 3, "sigma": 0.4},
          "species": {"O": {"properties": ["efg"]}, "Si": {"properties": ["efg"]}}, "ood": {"n_inducing": 50}}


def test_cross_validation_and_grid_search_prefer_the_sensible_ridge():
    data = synthetic_dataset(n_structures=6, n_atoms=24, seed=30)
    groups = [0, 0, 1, 1, 2, 2]
    result = cross_validate_model(data, CONFIG, n_splits=3, structure_groups=groups)
    assert len(result["folds"]) == 3
    mae = result["summary"]["efg"]["O"]["efg_mae_au"]
    assert np.isfinite(mae["mean"]) and mae["n_folds"] == 3
    search = grid_search_model(data, CONFIG, {"efg.alpha": [1e4, 1e-6]}, score=("efg", "O", "efg_mae_au"),
                               n_splits=3, structure_groups=groups)
    assert search["best"] == {"efg.alpha": 1e-6}
    assert search["table"][0]["score"] > search["table"][1]["score"]


def test_config_with_dotted_keys():
    config = config_with(CONFIG, {"descriptor.r_cut": 6.0, "efg.alpha": 1e-3})
    assert config["descriptor"]["r_cut"] == 6.0 and config["descriptor"]["n_max"] == 4
    assert config["efg"]["alpha"] == 1e-3 and CONFIG["descriptor"]["r_cut"] == 4.5


def test_learning_curve_error_decreases_with_data():
    data = synthetic_dataset(n_structures=9, n_atoms=24, seed=40)
    rows = learning_curve_model(data, CONFIG, train_structures=range(7), test_structures=[7, 8], sizes=[1, 7])
    first, last = (r["metrics"]["efg"]["O"]["efg_mae_au"] for r in rows)
    assert last < first


def test_train_cli_stores_cross_validation_metrics(tmp_path):
    import json

    from ase.io import write

    data = synthetic_dataset(n_structures=5, n_atoms=20, seed=50)
    frames = []
    for atoms, efg in zip(data.structures, data.tensors["efg"]):
        frame = atoms.copy()
        frame.new_array("efg", efg.reshape(len(frame), 9))
        frames.append(frame)
    path = tmp_path / "data.extxyz"
    write(path, frames)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    model = tmp_path / "model.npz"
    assert main(["train", str(path), "--efg-units", "au", "--config", str(config), "--cv", "5", "-o", str(model), "-q"]) == 0
    stored = NMRModel.load(model).metadata["cross_validation"]
    assert stored["n_splits"] == 5 and stored["summary"]["efg"]["Si"]["efg_mae_au"]["n_folds"] == 5
