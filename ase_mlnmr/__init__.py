"""ase_mlnmr: machine-learned solid-state NMR tensors (shielding, EFG) for ASE and LAMMPS.

One numerical core (:mod:`ase_mlnmr.core`, Cython: neighbour search, SOAP/λ-SOAP,
contracted linear models) serves the ASE property provider, the LAMMPS plugin and the trajectory tools.
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def get_include() -> str:
    """Directory holding ``mlnmr_core.h`` and the generated ``_soap_core_api.h`` and
    ``_correlator_api.h``.

    C/C++ callers include ``mlnmr_core.h`` first, then the generated header they need, and
    call its import function (``import_ase_mlnmr__core___soap_core()``,
    ``import_ase_mlnmr__core___correlator()``) once with the GIL held. The whole-model
    evaluator needs no generated header: ``mlnmr_core.h`` declares its loader
    (``docs/evaluator.md``).
    """
    return str(Path(__file__).resolve().parent / "core")


def __getattr__(name: str):
    # Lazy imports keep `import ase_mlnmr` light (no SciPy/ASE work until needed).
    if name in ("NMRCalculator", "attach_nmr_tensors"):
        from . import calculator

        return getattr(calculator, name)
    if name in ("NMRModel",):
        from . import nmr_model

        return nmr_model.NMRModel
    if name in ("SOAP", "LambdaSOAP"):
        from . import descriptors

        return getattr(descriptors, name)
    raise AttributeError(f"module 'ase_mlnmr' has no attribute {name!r}")


__all__ = ["__version__", "get_include", "NMRCalculator", "NMRModel", "attach_nmr_tensors", "SOAP", "LambdaSOAP"]
