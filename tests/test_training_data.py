"""Training refuses data it cannot learn from: nothing to fit, too few tensors, non-finite
or absurd targets (named by file and atom), non-finite fitted parameters; the default
config skips what the rules say is too little data, saying why."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from ase.io import write

from ase_mlnmr.cli import main
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.training.fitting import SkippedTrainingWarning, TrainingDataError

from synthetic_data import synthetic_dataset

SMALL = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
         "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40}, "efg": {"alpha": 1e-3},
         "ms_aniso": {"alpha": 1e-3}}


def _no_tensors(data):
    for prop in ("ms", "efg"):
        data.masks[prop] = [np.zeros_like(m) for m in data.masks[prop]]
        data.tensors[prop] = [np.zeros_like(t) for t in data.tensors[prop]]
    return data


def test_nothing_to_fit_is_an_error_naming_the_files():
    data = _no_tensors(synthetic_dataset(n_structures=4, n_atoms=12, seed=1))
    with pytest.raises(TrainingDataError, match="nothing to fit.*synthetic-1"):
        NMRModel.train(data, SMALL, progress=False)


def test_cli_train_on_all_nan_tensors_exits_2_and_writes_no_model(tmp_path, capsys):
    data = synthetic_dataset(n_structures=3, n_atoms=12, seed=2)
    frames = []
    for atoms in data.structures:
        atoms = atoms.copy()
        atoms.arrays["ms"] = np.full((len(atoms), 9), np.nan)
        frames.append(atoms)
    path = tmp_path / "nan.extxyz"
    write(path, frames)
    output = tmp_path / "model.npz"
    assert main(["train", str(path), "--ms-units", "ppm", "-o", str(output), "-q"]) == 2
    err = capsys.readouterr().err
    assert "nothing to fit" in err or ("every tensor is NaN" in err and "nan.extxyz" in err)  # the reader names it first
    assert not output.exists()


def test_a_listed_property_without_enough_tensors_is_an_error_naming_the_files():
    data = synthetic_dataset(n_structures=4, n_atoms=12, seed=3)
    data.masks["efg"] = [np.zeros_like(m) for m in data.masks["efg"]]
    config = {**SMALL, "species": {"Si": {"properties": ["ms_iso", "efg"]}}}
    with pytest.raises(TrainingDataError, match=r"efg of Si needs at least 1 efg tensor.*0 .*synthetic-3"):
        NMRModel.train(data, config, progress=False)


@pytest.mark.parametrize("value, message", [(1e300, "1e\\+300 ppm, beyond rules.max_abs_shielding_ppm"),
                                            (np.nan, "not finite"), (np.inf, "not finite")])
def test_absurd_or_non_finite_targets_are_rejected_naming_structure_and_atom(value, message):
    data = synthetic_dataset(n_structures=5, n_atoms=12, seed=4)
    atom = int(np.flatnonzero(data.structures[2].numbers == 14)[0])
    data.tensors["ms"][2][atom, 0, 0] = value
    config = {**SMALL, "species": {"Si": {"properties": ["ms_iso"]}}}
    with pytest.raises(TrainingDataError, match=f"synthetic-6 \\(structure 2, frame 2\\), atom {atom} \\(Si\\).*{message}"):
        NMRModel.train(data, config, progress=False)


def test_absurd_efg_threshold_is_a_rule_the_user_can_raise():
    data = synthetic_dataset(n_structures=5, n_atoms=12, seed=5)
    atom = int(np.flatnonzero(data.structures[0].numbers == 8)[0])
    data.tensors["efg"][0][atom] = np.diag([2e3, -1e3, -1e3])
    config = {**SMALL, "species": {"O": {"properties": ["efg"]}}}
    with pytest.raises(TrainingDataError, match="rules.max_abs_efg_au = 1000 a.u."):
        NMRModel.train(data, config, progress=False)
    model = NMRModel.train(data, {**config, "rules": {"max_abs_efg_au": 1e4}}, progress=False)
    assert model.properties_of("O") == ["efg"]


def test_non_finite_fitted_parameters_are_an_error():
    data = synthetic_dataset(n_structures=5, n_atoms=12, seed=6)
    for tensors in data.tensors["ms"]:
        tensors *= 1e160  # finite targets whose squares overflow
    config = {**SMALL, "species": {"Si": {"properties": ["ms_iso"]}}, "rules": {"max_abs_shielding_ppm": 1e300}}
    with pytest.raises(TrainingDataError, match="non-finite parameters"):
        NMRModel.train(data, config, progress=False)


def test_default_config_skips_too_little_data_saying_why_and_rules_override_it():
    data = synthetic_dataset(n_structures=6, n_atoms=12, seed=7, symbols=("Si", "O", "O", "O", "O", "O"))
    data.structures[0].numbers[-1] = 11  # Na only in the first structure: too few structures
    config = {**SMALL, "efg": {"alpha": "auto"}}
    with pytest.warns(SkippedTrainingWarning, match=r"Na efg: 1 site\(s\) in 1 structure\(s\), fewer than rules.min_structures = 5 and rules.min_sites = 10"):
        model = NMRModel.train(data, config, progress=False)
    assert "Na" not in model.elements and {"Si", "O"} <= set(model.elements)
    assert any(reason.startswith("Na ") for reason in model.metadata["skipped"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedTrainingWarning)
        lowered = NMRModel.train(data, {**config, "efg": {"alpha": 1e-3}, "rules": {"min_structures": 1, "min_sites": 1}},
                                 progress=False)
    assert "Na" in lowered.elements


def test_default_config_with_nothing_sensible_left_is_an_error():
    data = synthetic_dataset(n_structures=2, n_atoms=12, seed=8)
    with pytest.raises(TrainingDataError, match="nothing to fit: .*min_structures"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedTrainingWarning)
            NMRModel.train(data, SMALL, progress=False)


def test_cli_train_prints_what_the_rules_skipped(tmp_path, capsys):
    data = synthetic_dataset(n_structures=6, n_atoms=12, seed=9, symbols=("Si", "O", "O", "O", "O", "O"))
    frames = []
    for k, atoms in enumerate(data.structures):
        atoms = atoms.copy()
        if k == 0:
            atoms.numbers[-1] = 11
        atoms.arrays["ms"] = data.tensors["ms"][k].reshape(-1, 9)
        frames.append(atoms)
    path = tmp_path / "train.extxyz"
    write(path, frames)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SMALL))
    output = tmp_path / "model.npz"
    assert main(["train", str(path), "--ms-units", "ppm", "--config", str(config), "-o", str(output), "-q"]) == 0
    out = capsys.readouterr().out
    assert "not trained: Na ms_iso" in out and output.exists()
