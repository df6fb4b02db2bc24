"""Model files in layouts older code wrote, built from a current model (never committed
binaries): used by the tests that old files still load and by bench/bench_evaluator.py's
"before" column."""
from __future__ import annotations

from ase_mlnmr.models.model_file import save_model
from ase_mlnmr.nmr_model import NMRModel


def save_in_245de03_layout(model: NMRModel, path) -> None:
    """The layout NMRModel.save wrote at commit 245de03: OOD arrays duplicated, dense chol_zz."""
    arrays, components, ood = {}, [], []
    for k, ((element, prop), component) in enumerate(sorted(model.models.items())):
        model_arrays, meta = component.to_arrays()
        if "chol_zz_packed" in model_arrays:
            model_arrays.pop("chol_zz_packed")
            model_arrays["chol_zz"] = component.regressor.chol_zz_
        arrays.update({f"m{k}__{name}": value for name, value in model_arrays.items()})
        components.append({"prefix": f"m{k}__", **meta})
    for k, (element, (descriptor, nystrom)) in enumerate(sorted(model.ood_models.items())):
        model_arrays, params = nystrom.to_arrays()
        model_arrays.pop("chol_zz_packed")
        model_arrays["chol_zz"] = nystrom.chol_zz_
        arrays.update({f"ood{k}__{name}": value for name, value in model_arrays.items()})
        ood.append({"prefix": f"ood{k}__", "element": element, "descriptor": descriptor.get_parameters(),
                    "regressor_params": params})
    metadata = {"kind": "ase_mlnmr.NMRModel", "units": {"ms": "ppm", "efg": "au"}, "species": model.elements,
                "components": components, "ood_components": ood, "calibration": model.calibration,
                "isotopes": model.isotopes}
    save_model(path, arrays, metadata)
