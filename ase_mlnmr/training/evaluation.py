"""Model evaluation against DFT tensors: per-element metrics tables and parity plots.

Metrics (per centre element, on atoms that carry both a reference and a prediction):

* shielding: σiso MAE, RMSE (ppm) and %RMSE = 100 · RMSE / std(σiso ref); Haeberlen
  reduced anisotropy ζ (ppm) and asymmetry η MAE;
* EFG: MAE of the six independent components (a.u.) and as % of their span (max − min
  over the six components of that element's reference set); CQ MAE (MHz, for the
  element's quadrupolar isotope) and η MAE; Harper 2025 C̃Q, η̃ MAE and mean q̃.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .dataset import TensorDataset
from ..nmr.efg import quadrupolar_parameters
from ..nmr.metrics import efg_errors
from ..nmr.shielding import haeberlen
from ..nmr_model import NMRModel

__all__ = ["PairedTensors", "collect_predictions", "unknown_neighbour_elements", "efg_component_mae", "efg_metrics",
           "shielding_metrics", "metrics_table", "parity_plots", "evaluate"]

_UPPER = np.triu_indices(3)


@dataclass
class PairedTensors:
    """Reference and predicted tensors of one property, flattened over structures."""

    prop: str
    elements: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray
    structure_index: np.ndarray


def unknown_neighbour_elements(model: NMRModel, atoms) -> list[str]:
    """Elements of ``atoms`` that a descriptor the model would run on it was not built for
    (a structure holding them cannot be predicted: its neighbour densities are undefined)."""
    present = set(atoms.get_chemical_symbols())
    descriptors = [m.descriptor for (element, _), m in model.models.items() if element in present]
    descriptors += [descriptor for element, (descriptor, _) in model.ood_models.items() if element in present]
    return sorted({e for d in descriptors for e in present - set(d.species)})


def collect_predictions(model: NMRModel, dataset: TensorDataset, progress: bool = False,
                        unknown_species: str = "raise") -> dict[str, PairedTensors]:
    """Predict every structure and pair the predictions with the reference tensors.

    Atoms of elements without a model are left out. A structure holding an element the
    model's descriptors were not built for raises ``ValueError`` naming its file, frame
    and the elements (``unknown_species='raise'``), or is skipped with a warning
    (``'skip'``).
    """
    import warnings

    from tqdm import tqdm

    if unknown_species not in ("raise", "skip"):
        raise ValueError(f"unknown_species must be 'raise' or 'skip', got {unknown_species!r}")
    buckets: dict[str, list] = {"ms": [], "efg": []}
    skipped = []
    for index, atoms in enumerate(tqdm(dataset.structures, desc="predicting", unit="structure", disable=not progress)):
        unknown = unknown_neighbour_elements(model, atoms)
        if unknown:
            where = f"{dataset.sources[index]} (frame {dataset.frames[index]})"
            if unknown_species == "raise":
                raise ValueError(
                    f"{where} holds {unknown}, which the model (built for neighbours "
                    f"{sorted({e for m in model.models.values() for e in m.descriptor.species})}) cannot "
                    "describe; skip such structures with unknown_species='skip' (CLI --skip-unknown)"
                )
            skipped.append(where)
            continue
        prediction = model.predict(atoms, unknown_species="skip")
        symbols = np.array(atoms.get_chemical_symbols())
        for prop, predicted, mask in (("ms", prediction.ms, prediction.ms_mask), ("efg", prediction.efg, prediction.efg_mask)):
            keep = mask & dataset.masks[prop][index]
            if keep.any():
                buckets[prop].append((symbols[keep], dataset.tensors[prop][index][keep], predicted[keep],
                                      np.full(int(keep.sum()), index)))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} structures holding elements the model cannot describe: "
                      + ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""), stacklevel=2)
    out = {}
    for prop, parts in buckets.items():
        if parts:
            out[prop] = PairedTensors(prop, *(np.concatenate([p[k] for p in parts]) for k in range(4)))
    return out


def shielding_metrics(pairs: PairedTensors) -> dict[str, dict[str, float]]:
    """Per element: n, σiso MAE/RMSE (ppm), %RMSE, Haeberlen ζ MAE (ppm) and η MAE."""
    out = {}
    for element in np.unique(pairs.elements):
        m = pairs.elements == element
        ref, pred = pairs.reference[m], pairs.predicted[m]
        iso_ref, iso_pred = np.trace(ref, axis1=1, axis2=2) / 3, np.trace(pred, axis1=1, axis2=2) / 3
        error = iso_pred - iso_ref
        rmse = float(np.sqrt(np.mean(error**2)))
        spread = float(np.std(iso_ref))
        h_ref, h_pred = haeberlen(ref), haeberlen(pred)
        out[str(element)] = {
            "n": int(m.sum()),
            "sigma_iso_mae_ppm": float(np.mean(np.abs(error))),
            "sigma_iso_rmse_ppm": rmse,
            "sigma_iso_pct_rmse": 100.0 * rmse / spread if spread > 0 else float("nan"),
            "zeta_mae_ppm": float(np.mean(np.abs(h_pred.zeta - h_ref.zeta))),
            "eta_mae": float(np.mean(np.abs(h_pred.eta - h_ref.eta))),
        }
    return out


def efg_component_mae(reference: np.ndarray, predicted: np.ndarray) -> float:
    """MAE of the six independent components of (n, 3, 3) tensors (units of the tensors)."""
    return float(np.mean(np.abs(predicted[:, _UPPER[0], _UPPER[1]] - reference[:, _UPPER[0], _UPPER[1]])))


def efg_metrics(pairs: PairedTensors, isotopes: Mapping[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Per element: component MAE (a.u., % of span), CQ (MHz) and η MAE, Harper metrics."""
    harper = efg_errors(pairs.reference, pairs.predicted, pairs.elements)
    out = {}
    for element in np.unique(pairs.elements):
        m = pairs.elements == element
        ref = pairs.reference[m][:, _UPPER[0], _UPPER[1]]
        span = float(ref.max() - ref.min())
        mae = efg_component_mae(pairs.reference[m], pairs.predicted[m])
        row = {"n": int(m.sum()), "efg_mae_au": mae, "efg_mae_pct_span": 100 * mae / span if span > 0 else float("nan")}
        try:
            cq_ref, eta_ref = quadrupolar_parameters(pairs.reference[m], str(element), units="au", isotopes=isotopes)[:2]
            cq_pred, eta_pred = quadrupolar_parameters(pairs.predicted[m], str(element), units="au", isotopes=isotopes)[:2]
            row["cq_mae_MHz"] = float(np.mean(np.abs(cq_pred - cq_ref)))
            row["eta_mae"] = float(np.mean(np.abs(eta_pred - eta_ref)))
        except (KeyError, ValueError):
            pass  # no quadrupolar isotope (e.g. 29Si): no CQ
        errors = harper[str(element)]
        row.update(cq_tilde_mae=errors.mae_cq_tilde, eta_tilde_mae=errors.mae_eta_tilde, q_tilde_mean=errors.mean_q_tilde)
        out[str(element)] = row
    return out


def metrics_table(metrics: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Markdown table: one row per (property, element), one column per metric."""
    lines = []
    for prop, per_element in metrics.items():
        if not per_element:
            continue
        columns = list(next(iter(per_element.values())).keys())
        for row in per_element.values():
            columns += [c for c in row if c not in columns]
        lines.append(f"| {prop} | element | " + " | ".join(columns) + " |")
        lines.append("|---" * (len(columns) + 2) + "|")
        for element, row in per_element.items():
            cells = [f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
            lines.append(f"| {prop} | {element} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parity_plots(pairs: Mapping[str, PairedTensors], directory: str | Path) -> list[Path]:
    """Parity plots (PNG): σiso per element, and the EFG components per element."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for prop, pair in pairs.items():
        for element in np.unique(pair.elements):
            m = pair.elements == element
            if prop == "ms":
                x = np.trace(pair.reference[m], axis1=1, axis2=2) / 3
                y = np.trace(pair.predicted[m], axis1=1, axis2=2) / 3
                label, unit = "σiso", "ppm"
            else:
                x = pair.reference[m][:, _UPPER[0], _UPPER[1]].ravel()
                y = pair.predicted[m][:, _UPPER[0], _UPPER[1]].ravel()
                label, unit = "EFG components", "a.u."
            fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=120)
            ax.scatter(x, y, s=6, alpha=0.6, color="tab:blue", linewidths=0)
            low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            ax.plot([low, high], [low, high], color="black", lw=0.8)
            ax.set_xlabel(f"DFT {label} ({unit})")
            ax.set_ylabel(f"ML {label} ({unit})")
            mae = float(np.mean(np.abs(y - x)))
            ax.set_title(f"{element}: {label}, MAE {mae:.3g} {unit}, n = {int(m.sum())}")
            fig.tight_layout()
            path = directory / f"parity_{prop}_{element}.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written


def evaluate(model: NMRModel, dataset: TensorDataset, progress: bool = False,
             unknown_species: str = "raise") -> tuple[dict, dict[str, PairedTensors]]:
    """Metrics ``{"ms": {...}, "efg": {...}}`` and the paired tensors they came from
    (``unknown_species`` as in :func:`collect_predictions`)."""
    pairs = collect_predictions(model, dataset, progress, unknown_species)
    metrics: dict[str, dict] = {}
    if "ms" in pairs:
        metrics["ms"] = shielding_metrics(pairs["ms"])
    if "efg" in pairs:
        metrics["efg"] = efg_metrics(pairs["efg"], model.isotopes)
    return metrics, pairs
