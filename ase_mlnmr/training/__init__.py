"""The training side: reading DFT tensor data, the training configuration, fitting
models, cross-validation and model selection, evaluation metrics and parity plots.

Nothing here runs at prediction time; the fitted models live in
:mod:`ase_mlnmr.nmr_model` (the container) and :mod:`ase_mlnmr.models` (regressors and
model files), and are evaluated through the compiled core (:mod:`ase_mlnmr.core`).
"""
