"""Regression models for NMR tensors: Nyström kernel ridge (LSSVR), linear and
equivariant ridge, model files and cross-validation.

These work on feature arrays; descriptors are computed elsewhere.
"""
from .linear import EquivariantRidge, RidgeRegression
from .model_file import ModelFileError, load_estimator, load_model, save_estimator, save_model
from .nystrom import NystromKernelRidge, pivoted_cholesky
from .validation import (
    cross_validate,
    grid_search,
    kfold_splits,
    learning_curve,
    nested_cross_validate,
    regression_metrics,
    tensor_metrics,
)

__all__ = [
    "EquivariantRidge",
    "RidgeRegression",
    "NystromKernelRidge",
    "pivoted_cholesky",
    "ModelFileError",
    "save_model",
    "load_model",
    "save_estimator",
    "load_estimator",
    "cross_validate",
    "grid_search",
    "nested_cross_validate",
    "kfold_splits",
    "learning_curve",
    "regression_metrics",
    "tensor_metrics",
]
