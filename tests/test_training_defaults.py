"""One home of the defaults: the regressors, the ridge selection and the ``features``
command take the settings they share with the training config from
``training.config.DEFAULT_CONFIG`` (no second literal that could drift, as Nyström's
``n_inducing`` = 1000 against the config's 2000 did)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
from ase.build import bulk

from ase_mlnmr.cli import build_parser, main
from ase_mlnmr.descriptors import SOAP
from ase_mlnmr.models.linear import RidgeRegression
from ase_mlnmr.models.nystrom import NystromKernelRidge, pivoted_cholesky
from ase_mlnmr.training import model_selection, ridge_selection
from ase_mlnmr.training.config import DEFAULT_CONFIG
from ase_mlnmr.training.fitting import build_regressor

SHARED_WITH_CONFIG = ("n_inducing", "ridge", "normalize_features", "kernel", "zeta")


def test_nystrom_takes_the_settings_it_shares_with_the_config_from_the_config():
    params = NystromKernelRidge(length_scale=2.0).get_params()
    assert {key: params[key] for key in SHARED_WITH_CONFIG} == {key: DEFAULT_CONFIG["ms_iso"][key]
                                                                for key in SHARED_WITH_CONFIG}
    assert params["n_inducing"] == 2000 and params["zeta"] == 2  # the documented defaults (docs/models.md)


def test_nystrom_gaussian_needs_a_length_scale_and_the_dot_product_ignores_it():
    with pytest.raises(ValueError, match="length_scale"):
        NystromKernelRidge(n_inducing=10)
    assert NystromKernelRidge(n_inducing=10, kernel="dot_product").length_scale == 1.0


def test_explicit_settings_override_the_config_defaults():
    params = NystromKernelRidge(7, 0.5, 1e-3, kernel="dot_product", zeta=3, normalize_features=True).get_params()
    assert (params["n_inducing"], params["length_scale"], params["ridge"], params["kernel"], params["zeta"]) == \
        (7, 0.5, 1e-3, "dot_product", 3)


def test_pivoted_cholesky_default_kernel_is_the_config_kernel():
    """Without ``kernel``/``zeta`` the factor is the one of the config's kernel (Gaussian):
    L Lᵀ equals the Gaussian kernel matrix computed here at the pivots."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    factor = pivoted_cholesky(X, 1.5, 40, block_size=1)
    K = np.exp(-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) / (2 * 1.5**2))
    np.testing.assert_allclose(factor.factor @ factor.factor[factor.pivots].T, K[:, factor.pivots], atol=1e-10)
    assert DEFAULT_CONFIG["ms_iso"]["kernel"] == "gaussian"


def test_linear_ridge_has_no_default_alpha_and_training_passes_the_config_one():
    with pytest.raises(TypeError):
        RidgeRegression()
    config = {"ms_iso": {**DEFAULT_CONFIG["ms_iso"], "regressor": "linear"}}
    assert build_regressor("ms_iso", config, np.zeros((3, 2))).alpha == DEFAULT_CONFIG["ms_iso"]["alpha"]


def test_equivariant_regressor_with_auto_alpha_is_replaced_and_fixed_alpha_is_kept():
    fixed = build_regressor("efg", {"efg": {"alpha": 0.25, "feature_scaling": "global", "two_body": True}}, None)
    assert (fixed.alpha, fixed.feature_scaling) == (0.25, "global")
    auto = build_regressor("efg", {"efg": {"alpha": 0.25, "feature_scaling": "auto", "two_body": True}}, None)
    assert auto.feature_scaling == "per_feature"  # a fixed α with scaling "auto" means per-feature


@pytest.mark.parametrize("function", ["select_equivariant_alpha", "select_equivariant_ridge"])
def test_ridge_selection_folds_default_to_the_config(function):
    signature = inspect.signature(getattr(ridge_selection, function))
    assert signature.parameters["n_splits"].default == DEFAULT_CONFIG["selection"]["n_splits"]
    assert list(signature.parameters["grid"].default) == DEFAULT_CONFIG["selection"]["alpha_grid"]


def test_cross_validation_folds_default_to_the_config():
    functions = [getattr(model_selection, name) for name in model_selection.__all__
                 if callable(getattr(model_selection, name))]
    with_folds = [f for f in functions if "n_splits" in inspect.signature(f).parameters]
    assert len(with_folds) >= 4
    for function in with_folds:
        assert inspect.signature(function).parameters["n_splits"].default == DEFAULT_CONFIG["selection"]["n_splits"], \
            function.__name__


def test_features_command_defaults_are_the_config_descriptor(tmp_path):
    """``ase-mlnmr features`` without descriptor options equals a SOAP built from the
    config's descriptor section (and differs from a non-default r_cut: the test can fail)."""
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    path = tmp_path / "nacl.xyz"
    atoms.write(path)
    args = build_parser().parse_args(["features", str(path), "-o", str(tmp_path / "f.npz")])
    assert (args.r_cut, args.n_max, args.l_max, args.sigma) == (None, None, None, None)
    assert main(["features", str(path), "-o", str(tmp_path / "f.npz")]) == 0
    stored = np.load(tmp_path / "f.npz")
    descriptor = {key: DEFAULT_CONFIG["descriptor"][key] for key in ("r_cut", "n_max", "l_max", "sigma")}
    expected = SOAP(["Cl", "Na"], **descriptor).create(atoms)  # the command sorts the species
    other = SOAP(["Cl", "Na"], **{**descriptor, "r_cut": 4.0}).create(atoms)
    array = stored["features"]
    np.testing.assert_allclose(array, expected, rtol=1e-12, atol=1e-14)
    assert not np.allclose(array, other)
