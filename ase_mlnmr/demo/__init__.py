"""The demo: the main job end to end on the embedded default (``ase-mlnmr demo``).

Stages, one module each: :mod:`.training_stage` (models on mp_al27), :mod:`.glass`
(melt–quench, Pedone potential), :mod:`.md_stage` (LAMMPS with ``fix nmr/ml``),
:mod:`.trajectory_stage` (correlation functions, cross-check), :mod:`.spectra_stage`,
:mod:`.al_coordination` (the 27Al sign and reference check), :mod:`.report`; :mod:`.pipeline`
strings them together, :mod:`.settings` holds the sizes.
"""
from .pipeline import run_demo
from .settings import DISCLAIMER, FULL, QUICK, DemoSettings

__all__ = ["run_demo", "DemoSettings", "FULL", "QUICK", "DISCLAIMER"]
