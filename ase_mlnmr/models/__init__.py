"""Regression models for NMR tensors: Nyström kernel ridge (LSSVR), linear and
equivariant ridge, and model files (cross-validation lives in :mod:`ase_mlnmr.training`).

These work on feature arrays; descriptors are computed elsewhere.
"""
from .linear import EquivariantRidge, RidgeRegression
from .model_file import ModelFileError, load_estimator, load_model, save_estimator, save_model
from .nystrom import NystromKernelRidge, pivoted_cholesky

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
]
