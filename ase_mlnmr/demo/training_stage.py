"""Stage 1: calibrated Al and O models (σiso with a δiso calibration, EFG) from the
embedded MIT-licensed ``mp_al27`` set (13 oxygen-bearing crystals, VASP's −σ read with
``ms_convention="shift"``), its cross-validation table and a held-out check.

Calibrations δiso = −a(σiso − σref), a = 1 for both nuclei (exact referencing; the set
has too few crystals with measured shifts to fit a slope — and fitting one to force the
expected AlO4–AlO6 gap would not be physics):

* ²⁷Al: σref = σiso of Al in the set's AlCl3·6H2O, whose Al(H2O)6³⁺ is the ²⁷Al primary
  reference, δ = 0 (IUPAC 2001, Harris et al., doi:10.1351/pac200173111795;
  docs/conventions.md, :func:`ase_mlnmr.examples.mp_al27_al_calibration`).
* ¹⁷O: σref = mean σiso of the water O of the same crystal, set to δ = 0 because liquid
  H2O is the ¹⁷O primary reference (same IUPAC source). Water bound to Al³⁺ is not liquid
  water: this reference is approximate by an amount not quantified here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.neighborlist import neighbor_list

from ..examples import AL_REFERENCE_FORMULA, load_mp_al27, mp_al27_al_calibration
from ..nmr_model import NMRModel
from ..training.dataset import TensorDataset
from ..training.evaluation import PairedTensors, evaluate, metrics_table
from ..training.model_selection import cross_validate_model
from .al_coordination import al_sites, coordination_check, coordination_rows, format_checks

__all__ = ["CALIBRATION_SOURCES", "TrainingResult", "o17_water_calibration", "demo_config", "held_out_split", "reference_site_delta",
           "train_models"]

#: Where σref of each nucleus comes from and how exact it is (tables/calibration.csv, docs/conventions.md).
CALIBRATION_SOURCES = {
    "Al": ("exact referencing: sigma_ref = mean sigma_iso of the Al of the set's AlCl3.6H2O (VASP, core excluded); its "
           "Al(H2O)6 3+ is the 27Al primary reference, delta = 0 (IUPAC 2001, Harris et al., "
           "doi:10.1351/pac200173111795); slope 1, not fitted"),
    "O": ("APPROXIMATE: sigma_ref = mean sigma_iso of the water O (O bonded to two H) of the same AlCl3.6H2O, set to "
          "delta = 0 because liquid H2O is the 17O primary reference (IUPAC 2001, same DOI); water bound to Al 3+ in a "
          "crystal is not liquid water, by an amount not quantified here; slope 1, not fitted"),
}


@dataclass
class TrainingResult:
    """What stage 1 produced."""

    model: NMRModel  # trained on all 13 crystals: the model the MD stage uses
    model_path: Path
    config: dict
    cv_summary: dict  # {prop: {element: {metric: {mean, std}}}}
    held_out_names: list[str]
    held_out_metrics: dict
    held_out_pairs: dict[str, PairedTensors]
    al_checks: list = field(default_factory=list)  # AlO4 − AlO6 reference per source (al_coordination)
    al_rows: list = field(default_factory=list)  # δiso per structure and Al coordination, per source
    al_reference_model_ppm: float = 0.0  # δiso the final model gives the Al(H2O)6 3+ reference site
    held_out_model: NMRModel | None = None  # trained on the 10 other crystals
    held_out_structures: list = field(default_factory=list)
    held_out_files: list = field(default_factory=list)  # magres per crystal + predictions.csv


def o17_water_calibration(data: TensorDataset) -> dict[str, float]:
    """¹⁷O calibration: slope 1, σref = mean σiso (ppm, core excluded) of the O bonded to
    two H in AlCl3·6H2O (δ = 0, liquid water being the primary reference; approximate)."""
    for atoms, tensors, mask in zip(data.structures, data.tensors["ms"], data.masks["ms"]):
        if atoms.get_chemical_formula() != AL_REFERENCE_FORMULA:
            continue
        i, j = neighbor_list("ij", atoms, 1.2)
        water = [k for k in np.flatnonzero(atoms.numbers == 8)
                 if np.sum(atoms.numbers[j[i == k]] == 1) == 2 and mask[k]]
        sigma_ref = float(np.mean(np.trace(tensors[water], axis1=1, axis2=2) / 3))
        return {"slope": 1.0, "sigma_ref": sigma_ref}
    raise ValueError(f"the data hold no {AL_REFERENCE_FORMULA} (AlCl3·6H2O) to reference 17O shifts on")


def demo_config(data: TensorDataset) -> dict:
    """Training config: σiso (Nyström) + EFG for Al and O, calibrations; the density
    channels are the elements of the training crystals (the default)."""
    return {
        "descriptor": {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.5, "mixing_channels": 4},
        "species": {"Al": {"properties": ["ms_iso", "efg"]}, "O": {"properties": ["ms_iso", "efg"]}},
        "ms_iso": {"n_inducing": 200, "ridge": 1e-4},
        "efg": {"alpha": 1e-3},
        "calibration": {"Al": mp_al27_al_calibration(data), "O": o17_water_calibration(data)},
        "isotopes": {"Al": "27Al", "O": "17O"},
    }


def held_out_split(data: TensorDataset, n_test: int = 3) -> tuple[list[int], list[int]]:
    """(train, test) structure indices: the last ``n_test`` crystals whose elements all
    occur in the remaining training crystals."""
    elements = [set(atoms.get_chemical_symbols()) for atoms in data.structures]
    test: list[int] = []
    for candidate in reversed(range(len(data))):
        others = set().union(*(elements[j] for j in range(len(data)) if j != candidate and j not in test))
        if elements[candidate] <= others and len(test) < n_test:
            test.append(candidate)
    test.sort()
    return [i for i in range(len(data)) if i not in test], test


def reference_site_delta(structures, al_delta_iso_ppm) -> float:
    """Mean δiso (ppm) of the Al of the AlCl3·6H2O crystal among ``structures`` (its
    Al(H2O)6³⁺ is the 27Al reference, δ = 0 by calibration); 0.0 when it is not among them."""
    for atoms, delta in zip(structures, al_delta_iso_ppm):
        if atoms.get_chemical_formula() == AL_REFERENCE_FORMULA:
            return float(np.mean(delta))
    return 0.0


def _dft_al_delta(data: TensorDataset, k: int, calibration: dict) -> np.ndarray:
    atoms, ms = data.structures[k], data.tensors["ms"][k]
    sigma = np.trace(ms[atoms.numbers == 13], axis1=1, axis2=2) / 3
    return -calibration["slope"] * (sigma - calibration["sigma_ref"])


def train_models(output: Path, cv_folds: int, progress: bool = True, show=print,
                 predictions_folder: Path | None = None) -> TrainingResult:
    """Cross-validate, check on held-out crystals (their predictions, magres files and
    ``predictions.csv`` go to ``predictions_folder``), then train the final model on all
    13 crystals and save it as ``output/mp_al27_model.npz``."""
    data = load_mp_al27(oxides_only=True)
    config = demo_config(data)
    calibration = config["calibration"]
    show(f"  mp_al27 (MIT, VASP, embedded): {len(data)} oxygen-bearing crystals, ms read as −σ "
         f"(ms_convention='shift')")
    for element, c in calibration.items():
        show(f"  δiso calibration {element}: δ = −a(σiso − σref), a = {c['slope']:g}, σref = {c['sigma_ref']:.1f} ppm; "
             f"{CALIBRATION_SOURCES[element]}")
    # every element of the set as a density channel, so that a fold may hold one out
    every_element = sorted({s for atoms in data.structures for s in atoms.get_chemical_symbols()})
    cv = cross_validate_model(data, {**config, "neighbour_species": every_element}, n_splits=cv_folds,
                              progress=progress)
    means = {p: {e: {m: v["mean"] for m, v in row.items()} for e, row in per.items()}
             for p, per in cv["summary"].items()}
    show(f"  {cv_folds}-fold cross-validation over the 13 crystals (mean of folds; density channels: all "
         f"{len(every_element)} elements of the set):")
    show(metrics_table(means))
    train, test = held_out_split(data)
    held_model = NMRModel.train(data, config, progress=False, structure_indices=train)
    held_out = data.subset(np.array(test))
    metrics, pairs = evaluate(held_model, held_out)
    names = [atoms.get_chemical_formula() for atoms in held_out.structures]
    written: list[Path] = []
    if predictions_folder is not None:
        from ..cli import predict_structures

        written = predict_structures(held_model, [atoms.copy() for atoms in held_out.structures],
                                     [f"{name}_{k}" for name, k in zip(names, test)], predictions_folder,
                                     "magres", "skip", quiet=not progress)
    predicted = [held_model.predict(atoms, unknown_species="skip").delta_iso[atoms.numbers == 13] for atoms in held_out.structures]
    al_mae = metrics["ms"]["Al"]["sigma_iso_mae_ppm"]  # slope 1: also the δiso MAE
    dft_all = [_dft_al_delta(data, k, calibration["Al"]) for k in range(len(data))]
    dft_held = [_dft_al_delta(held_out, k, calibration["Al"]) for k in range(len(held_out))]
    sources = [(f"DFT, all {len(data)} crystals", data.structures, dft_all,
                "DFT (VASP) values on the calibrated axis, slope 1, nothing fitted"),
               (f"model, {len(names)} held-out crystals", held_out.structures, predicted,
                f"MODEL result (trained on the other {len(train)} crystals; held-out 27Al δiso MAE {al_mae:.0f} ppm)"),
               ("DFT, the same held-out crystals", held_out.structures, dft_held,
                "DFT values of the held-out crystals, for comparison with the model line above")]
    al_sites_of = [al_sites(source, structures, deltas) for source, structures, deltas, _ in sources]
    al_checks = [coordination_check(sites, reference_site_delta(structures, deltas), note)
                 for sites, (_, structures, deltas, note) in zip(al_sites_of, sources)]
    al_rows = [row for sites in al_sites_of for row in coordination_rows(sites)]
    show(format_checks(al_checks))
    model = NMRModel.train(data, config, progress=progress)
    model_path = model.save(output / "mp_al27_model.npz",
                            extra_metadata={"cross_validation": {"n_splits": cv_folds, "summary": cv["summary"]}})
    reference = [atoms for atoms in data.structures if atoms.get_chemical_formula() == AL_REFERENCE_FORMULA]
    reference_model = reference_site_delta(reference, [model.predict(atoms, unknown_species="skip").delta_iso[
        atoms.numbers == 13] for atoms in reference])
    return TrainingResult(model, Path(model_path), config, cv["summary"], names, metrics, pairs, al_checks, al_rows,
                          reference_model, held_model, [data.structures[k] for k in test], written)
