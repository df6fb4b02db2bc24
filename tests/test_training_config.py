"""The training config: one home for every default, unknown keys and values rejected with
the valid ones, malformed configs named, and every setting documented."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ase_mlnmr.cli import main
from ase_mlnmr.models.nystrom import held_out_residuals
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.training.config import DEFAULT_CONFIG, SCHEMA, ConfigError, validate_config
from ase_mlnmr.training.fitting import build_regressor

from synthetic_data import synthetic_dataset

SMALL = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
         "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40},
         "species": {"Si": {"properties": ["ms_iso"]}}}


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(n_structures=5, n_atoms=18, seed=11)


@pytest.mark.parametrize("config, named", [
    ({"descripter": {"r_cut": 4.0}}, ["'descripter'", "did you mean 'descriptor'", "ms_iso", "species"]),
    ({"ms_iso": {"regressor": "svm"}}, ["ms_iso.regressor", "'svm'", "nystrom", "linear"]),
    ({"efg": {"feature_scaling": "rms"}}, ["efg.feature_scaling", "per_feature", "global"]),
    ({"isotopes": {"Al": "99Al"}}, ["isotopes.Al", "99Al", "27Al"]),
    ({"isotopes": {"Si": "29Si"}}, ["isotopes.Si", "spin 1/2"]),
    ({"ms_iso": {"n_inducng": 50}}, ["n_inducng", "n_inducing"]),
    ({"species": {"Si": {"propertes": ["ms_iso"]}}}, ["species.Si", "propertes", "properties"]),
    ({"species": {"Si": {"properties": ["ms_isotropic"]}}}, ["ms_isotropic", "ms_iso", "efg"]),
    ({"species": {"Qq": {}}}, ["'Qq'", "element symbol"]),
    ({"descriptor": {"n_max": 2.5}}, ["descriptor.n_max", "integer"]),
    ({"descriptor": {"r_cut": -1}}, ["descriptor.r_cut", "> 0"]),
    ({"efg": {"alpha": "automatic"}}, ["efg.alpha", '"auto"']),
    ({"rules": {"min_sites": 0}}, ["rules.min_sites"]),
])
def test_unknown_keys_and_values_are_rejected_listing_the_valid_ones(data, config, named):
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    for text in named:
        assert text in str(caught.value)
    with pytest.raises(ValueError):  # training refuses before any fit, too
        NMRModel.train(data, {**SMALL, **config}, progress=False)


@pytest.mark.parametrize("config, named", [
    ([{"descriptor": {}}], "JSON object"),
    ({"species": ["Si", "O"]}, "species"),
    ({"species": {"Si": ["ms_iso"]}}, "species.Si"),
    ({"descriptor": [5.0, 6]}, "descriptor"),
    ({"neighbour_species": "SiO"}, "neighbour_species"),
])
def test_malformed_configs_get_a_named_error(data, config, named):
    with pytest.raises(ConfigError, match=named):
        validate_config(config)
    with pytest.raises(ConfigError, match=named):
        NMRModel.train(data, config, progress=False)


def test_validated_config_fills_every_default_from_the_schema():
    config = validate_config({"ms_iso": {"ridge": 1e-3}})
    for section, options in SCHEMA.items():
        for key, option in options.items():
            expected = 1e-3 if (section, key) == ("ms_iso", "ridge") else option.default
            assert config[section][key] == expected


def test_factories_read_their_defaults_from_the_config():
    features = np.random.default_rng(0).normal(size=(50, 6))
    regressor = build_regressor("ms_iso", {}, features)
    assert regressor.n_inducing == DEFAULT_CONFIG["ms_iso"]["n_inducing"]
    assert regressor.ridge == DEFAULT_CONFIG["ms_iso"]["ridge"]
    assert regressor.zeta == DEFAULT_CONFIG["ms_iso"]["zeta"]


def test_out_of_domain_ridge_comes_from_the_config(data):
    config = {**SMALL, "species": {"Si": {"properties": ["ms_iso"]}},
              "ms_iso": {"regressor": "linear"}, "ood": {"n_inducing": 30, "ridge": 1e-3}}
    model = NMRModel.train(data, config, progress=False)
    assert model.ood_models["Si"][1].ridge == 1e-3
    assert model.metadata["provenance"]["config"]["ood"]["ridge"] == 1e-3


def test_docs_list_every_setting_with_its_default():
    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    table = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*`([a-z_]+)\.([a-z_0-9]+)`\s*\|\s*`([^`]*)`\s*\|", line)
        if match:
            table[(match.group(1), match.group(2))] = match.group(3)
    for section, options in SCHEMA.items():
        for key, option in options.items():
            assert (section, key) in table, f"{section}.{key} is not documented in docs/models.md"
            if key != "alpha_grid":
                assert json.loads(table[(section, key)]) == option.default, f"{section}.{key}"


def test_cli_train_rejects_a_bad_config_before_reading_data(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"descripter": {"r_cut": 4.0}}))
    missing_data = tmp_path / "does_not_exist.extxyz"
    assert main(["train", str(missing_data), "--config", str(config), "-o", str(tmp_path / "m.npz"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "descripter" in err and "descriptor" in err and "not found" not in err
    config.write_text(json.dumps(["not", "an", "object"]))
    assert main(["train", str(missing_data), "--config", str(config), "-o", str(tmp_path / "m.npz"), "-q"]) == 2
    assert "JSON object" in capsys.readouterr().err


def test_cli_train_checks_the_output_path_before_the_work(tmp_path, capsys):
    missing_data = tmp_path / "does_not_exist.extxyz"
    for output, message in [(tmp_path / "no_such_folder" / "m.npz", "does not exist"), (tmp_path, "folder")]:
        assert main(["train", str(missing_data), "-o", str(output), "-q"]) == 2
        err = capsys.readouterr().err
        assert message in err and "not found" not in err


def test_descriptor_settings_a_default_property_cannot_use_fail_before_any_fit(data, monkeypatch):
    import ase_mlnmr.training.fitting as fitting

    def no_fit(*args, **kwargs):
        raise AssertionError("a model was fitted before the descriptor settings were checked")

    monkeypatch.setattr(fitting, "fit_property_model", no_fit)
    with pytest.raises(ConfigError, match="(ms_aniso|efg) of .*l_max"):
        NMRModel.train(data, {**SMALL, "species": None, "descriptor": {**SMALL["descriptor"], "l_max": 1},
                              "rules": {"min_sites": 1, "min_structures": 1}}, progress=False)


def _residuals_by_hand(model: NMRModel, data, element: str, n_splits: int) -> np.ndarray:
    """Held-out residuals of the element's training atoms with ``n_splits`` structure folds."""
    descriptor, nystrom = model.ood_models[element]
    selection = data.select("ms", element)
    features, groups = [], []
    for structure in np.unique(selection.structure_index):
        centres = selection.atom_index[selection.structure_index == structure]
        features.append(descriptor.create(data.structures[structure], centres=centres))
        groups.append(np.full(len(centres), structure))
    return np.sort(held_out_residuals(nystrom, np.concatenate(features), np.concatenate(groups),
                                      model.ood_rank[element], n_splits))


def test_ood_reference_folds_follow_selection_n_splits(data):
    """The OOD reference (held-out residuals) uses ``selection.n_splits`` folds: the one
    default, or a species' own value."""
    default_splits = DEFAULT_CONFIG["selection"]["n_splits"]
    assert default_splits != 2
    default = NMRModel.train(data, SMALL, progress=False)
    np.testing.assert_array_equal(default.ood_reference["Si"], _residuals_by_hand(default, data, "Si", default_splits))
    two = NMRModel.train(data, {**SMALL, "species": {"Si": {"properties": ["ms_iso"], "selection": {"n_splits": 2}}}},
                         progress=False)
    np.testing.assert_array_equal(two.ood_reference["Si"], _residuals_by_hand(two, data, "Si", 2))
    assert not np.array_equal(two.ood_reference["Si"], _residuals_by_hand(two, data, "Si", default_splits))
    two.fit_ood_reference(data)  # without n_splits: the config's default again
    np.testing.assert_array_equal(two.ood_reference["Si"], _residuals_by_hand(two, data, "Si", default_splits))
