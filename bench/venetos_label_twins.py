#!/usr/bin/env python
"""Label twins in the Venetos 29Si set: near-identical Si environments of different groups
whose σiso labels disagree (docs/uncertainty.md, "Label noise in the Venetos set").

Run from the repository root (package built in place)::

    PYTHONPATH=.:bench python bench/venetos_label_twins.py

Data only, no model and no fold: every Si site's species-resolved SOAP power spectrum
(r_cut 5 Å, n_max 4, l_max 8, σ 0.4 Å: the descriptor the model-selection protocol chose
for its fold 0, without the species mixing), scaled to unit length as the σiso dot-product
kernel sees it. For each site, its nearest site (Euclidean distance d of the unit vectors)
in another group of ``venetos_dev_groups.csv`` and in its own group, and the difference of
their σiso labels Δ (ppm). A function of the 5 Å environment gives two sites at d ≈ 0 the
same value, so it errs by at least |Δ|/2 on one of them: twins with large |Δ| are an error
floor that no model of this cut-off and no per-site uncertainty from the environment can
remove. Twins of different groups with |Δ| > 5 ppm ("conflicting twins") are compared again
with a wider descriptor (r_cut 8 Å, n_max 8, l_max 6) and by their structures' atom count and
volume per atom: identical there too, they are the same structure entered twice with
labels from different calculations. Whole structures entered twice (the same atom count and
volume per atom, every Si site with a twin among the other's) are listed with the mean
difference of their labels: repeated calculations of one structure, an estimate of the
labels' own noise.

With ``bench/results/calibration_committee_venetos_v2.json`` present (protocol v2's outer
run, already counted), it also prints, as an after-the-fact diagnostic that chooses nothing,
whether any global factor c on that run's u would have put ±c·u and ±2c·u into the
protocol's bands, the ratio of the 95 % and 68.27 % quantiles of |e|/u (1.96 for
Gaussian errors), and the coverage of the sites without a conflicting twin.

Output: a Markdown summary on stdout, JSON in ``bench/results/venetos_label_twins.json``.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from calibration_committee import BAND_1SIGMA, BAND_2SIGMA, RESULTS, VENETOS_V2_SEED  # noqa: E402

#: the descriptor of the model-selection protocol's fold-0 choice, without species mixing
DESCRIPTOR = {"r_cut": 5.0, "n_max": 4, "l_max": 8, "sigma": 0.4}
#: distances (unit-length power spectra) below which two environments count as twins
TWIN_DISTANCES = (1e-3, 1e-2)
#: label differences (ppm) counted among twins
LABEL_GAPS_PPM = (1.0, 5.0, 10.0)
#: a twin (d below TWIN_DISTANCES[0]) of another group whose label differs by more than this conflicts
CONFLICT_GAP_PPM = 5.0
#: the wider descriptor that re-checks conflicting twins
WIDE_DESCRIPTOR = {"r_cut": 8.0, "n_max": 8, "l_max": 6, "sigma": 0.4}


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows divided by their Euclidean norm (the normalised dot-product kernel's view)."""
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def nearest(unit: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) of each row's nearest row where ``allowed[i, j]`` ((n, n) bool).

    d² = 2 − 2 x̂·ŷ for unit vectors; rows without an allowed partner get index −1, d = inf.
    """
    squared = np.maximum(2.0 - 2.0 * unit @ unit.T, 0.0)
    squared[~allowed] = np.inf
    index = np.argmin(squared, axis=1)
    distance = np.sqrt(squared[np.arange(len(unit)), index])
    return np.where(np.isfinite(distance), index, -1), distance


def twin_summary(distance: np.ndarray, gap: np.ndarray) -> list[dict]:
    """Per twin distance: how many sites have a partner that close, and how far their labels differ."""
    out = []
    for threshold in TWIN_DISTANCES:
        close = distance < threshold
        row = {"distance_below": threshold, "sites": int(close.sum())}
        if close.any():
            row.update({"median_gap_ppm": float(np.median(gap[close])), "max_gap_ppm": float(gap[close].max()),
                        **{f"gap_above_{g:g}_ppm": int(np.sum(gap[close] > g)) for g in LABEL_GAPS_PPM}})
        out.append(row)
    return out


def rescaling_check(path: Path, site_order: np.ndarray, conflicting: np.ndarray) -> dict | None:
    """Post-hoc: factors c with coverage(|z| ≤ c) and coverage(|z| ≤ 2c) both in the bands
    (z = e/u of the v2 outer run, its sites in ``site_order``), the 95 % / 68.27 % quantile
    ratio of |z|, and the coverage of ±u, ±2u without the ``conflicting`` sites ((n,) bool)."""
    if not path.is_file():
        return None
    z = np.abs(np.asarray(json.loads(path.read_text())["pooled"]["Si ms_iso"]["z"], dtype=float))
    kept = ~conflicting[site_order]
    factors = np.linspace(0.25, 2.0, 1751)
    inside = [float(c) for c in factors
              if BAND_1SIGMA[0] <= np.mean(z <= c) <= BAND_1SIGMA[1]
              and BAND_2SIGMA[0] <= np.mean(z <= 2 * c) <= BAND_2SIGMA[1]]
    q68, q95 = np.quantile(z, [0.6827, 0.95])
    return {"n": int(z.size), "factors_passing_both_bands": inside, "quantile_95": float(q95),
            "quantile_68": float(q68), "quantile_ratio": float(q95 / q68),
            "kurtosis": float(np.mean(z**4) / np.mean(z**2) ** 2),
            "coverage_2c_at_68_quantile": float(np.mean(z <= 2 * q68)),
            "coverage_1u_2u": [float(np.mean(z <= 1)), float(np.mean(z <= 2))],
            "n_without_conflicting": int(kept.sum()),
            "coverage_1u_2u_without_conflicting": [float(np.mean(z[kept] <= 1)), float(np.mean(z[kept] <= 2))],
            "kurtosis_without_conflicting": float(np.mean(z[kept]**4) / np.mean(z[kept]**2) ** 2)}


def conflicting_twins(data, partner: np.ndarray, distance: np.ndarray, gap: np.ndarray) -> list[dict]:
    """Sites whose twin of another group (d < TWIN_DISTANCES[0]) differs by > CONFLICT_GAP_PPM:
    their distance with :data:`WIDE_DESCRIPTOR` and both structures' atom count and volume per atom (Å³)."""
    from ase_mlnmr.descriptors import SOAP

    sites = np.flatnonzero((distance < TWIN_DISTANCES[0]) & (gap > CONFLICT_GAP_PPM))
    wide = unit_rows(data.site_features(SOAP(data.species, **WIDE_DESCRIPTOR)))
    out = []
    for site in sites:
        structures = [data.dataset.structures[data.sel.structure_index[i]] for i in (site, partner[site])]
        out.append({"site": int(site), "partner": int(partner[site]),
                    "formula": data.formulas[data.sel.structure_index[site]],
                    "distance": float(distance[site]),
                    "wide_distance": float(np.linalg.norm(wide[site] - wide[partner[site]])),
                    "gap_ppm": float(gap[site]), "atoms": [len(a) for a in structures],
                    "volume_per_atom": [float(a.get_volume() / len(a)) for a in structures]})
    return out


def duplicate_structures(data, unit: np.ndarray) -> list[dict]:
    """Pairs of structures entered twice: the same atom count, volume per atom within 0.01 Å³
    and every Si site with a twin (d < TWIN_DISTANCES[0]) among the other's Si sites. Per
    pair: both groups and the mean and range of the label difference Δ (ppm) over the matched sites."""
    structures = np.unique(data.sel.structure_index)
    rows = {s: np.flatnonzero(data.sel.structure_index == s) for s in structures}
    atoms = {s: data.dataset.structures[s] for s in structures}
    shape = {s: (len(atoms[s]), atoms[s].get_volume() / len(atoms[s])) for s in structures}
    out = []
    for i, first in enumerate(structures):
        for second in structures[i + 1:]:
            if shape[first][0] != shape[second][0] or abs(shape[first][1] - shape[second][1]) >= 1e-2 \
                    or len(rows[first]) != len(rows[second]):
                continue
            distance = np.sqrt(np.maximum(2.0 - 2.0 * unit[rows[first]] @ unit[rows[second]].T, 0.0))
            match = np.argmin(distance, axis=1)
            if np.all(distance[np.arange(len(match)), match] < TWIN_DISTANCES[0]):
                gap = data.y[rows[first]] - data.y[rows[second]][match]
                out.append({"structures": [int(first), int(second)], "formula": data.formulas[first],
                            "groups": [int(data.structure_groups[first]), int(data.structure_groups[second])],
                            "si_sites": int(len(match)), "mean_gap_ppm": float(np.mean(gap)),
                            "max_distance": float(distance[np.arange(len(match)), match].max()),
                            "gap_range_ppm": [float(gap.min()), float(gap.max())]})
    return out


def main() -> None:
    from accuracy_venetos_si import N_OUTER, Data
    from ase_mlnmr.descriptors import SOAP

    start = time.process_time()
    data = Data(VENETOS_V2_SEED)   # only the data and groups are used, not the folds
    unit = unit_rows(data.site_features(SOAP(data.species, **DESCRIPTOR)))
    same_structure = data.sel.structure_index[:, None] == data.sel.structure_index[None, :]
    any_index, any_distance = nearest(unit, ~same_structure)
    any_gap = np.abs(data.y - data.y[any_index])
    same_group = data.groups[:, None] == data.groups[None, :]
    other_index, other_distance = nearest(unit, ~same_group)
    np.fill_diagonal(same_group, False)
    own_index, own_distance = nearest(unit, same_group)
    other_gap = np.abs(data.y - data.y[other_index])
    own_gap = np.where(own_index >= 0, np.abs(data.y - data.y[np.maximum(own_index, 0)]), np.nan)
    has_own = own_index >= 0
    conflicts = conflicting_twins(data, other_index, other_distance, other_gap)
    conflicting = np.zeros(len(data.y), dtype=bool)
    conflicting[[row["site"] for row in conflicts]] = True
    site_order = np.concatenate([data.outer(fold)[3] for fold in range(N_OUTER)])   # v2's pooled order
    result = {
        "descriptor": DESCRIPTOR, "n_sites": int(len(data.y)), "n_groups": int(np.unique(data.groups).size),
        "other_structure": twin_summary(any_distance, any_gap),
        "other_group": twin_summary(other_distance, other_gap),
        "own_group": twin_summary(own_distance[has_own], own_gap[has_own]),
        "largest_gaps": sorted(
            ({"site": int(i), "formula": data.formulas[data.sel.structure_index[i]],
              "partner_formula": data.formulas[data.sel.structure_index[other_index[i]]],
              "distance": float(other_distance[i]), "gap_ppm": float(other_gap[i])}
             for i in np.flatnonzero(other_distance < TWIN_DISTANCES[-1])),
            key=lambda row: -row["gap_ppm"])[:12],
        "conflicting_twins": conflicts,
        "duplicate_structures": duplicate_structures(data, unit),
        "v2_outer_rescaling": rescaling_check(RESULTS / "calibration_committee_venetos_v2.json", site_order,
                                              conflicting),
        "cpu_s": time.process_time() - start,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "venetos_label_twins.json").write_text(json.dumps(result, indent=1))

    print(f"{result['n_sites']} Si sites in {result['n_groups']} groups; descriptor {DESCRIPTOR} (unit length)\n")
    print("| nearest site in | d below | sites | median \\|Δ\\| (ppm) | max \\|Δ\\| (ppm) | "
          + " | ".join(f"\\|Δ\\| > {g:g} ppm" for g in LABEL_GAPS_PPM) + " |")
    print("|---|---|---|---|---|" + "---|" * len(LABEL_GAPS_PPM))
    for label in ("other_structure", "other_group", "own_group"):
        for row in result[label]:
            gaps = " | ".join(str(row.get(f"gap_above_{g:g}_ppm", 0)) for g in LABEL_GAPS_PPM)
            print(f"| {label.replace('_', ' ')} | {row['distance_below']:g} | {row['sites']} | "
                  f"{row.get('median_gap_ppm', float('nan')):.2f} | "
                  f"{row.get('max_gap_ppm', float('nan')):.2f} | {gaps} |")
    print("\nLargest label gaps between twins of different groups (d < 1e-2):")
    for row in result["largest_gaps"]:
        print(f"  site {row['site']:4d} {row['formula']:>14s} ~ {row['partner_formula']:<14s} "
              f"d = {row['distance']:.5f}  |Δ| = {row['gap_ppm']:.2f} ppm")
    wide_max = max((row["wide_distance"] for row in conflicts), default=float("nan"))
    same_cell = sum(row["atoms"][0] == row["atoms"][1]
                    and abs(row["volume_per_atom"][0] - row["volume_per_atom"][1]) < 1e-2 for row in conflicts)
    print(f"\nConflicting twins (d < {TWIN_DISTANCES[0]:g}, |Δ| > {CONFLICT_GAP_PPM:g} ppm): "
          f"{len(conflicts)} sites of "
          f"{len({data.sel.structure_index[row['site']] for row in conflicts})} structures; largest distance with "
          f"r_cut {WIDE_DESCRIPTOR['r_cut']:g} Å {wide_max:.5f}; {same_cell} with the same atom count and volume per "
          f"atom within 0.01 Å³ as their twin's structure")
    pairs = result["duplicate_structures"]
    offsets = np.abs([pair["mean_gap_ppm"] for pair in pairs])
    print(f"Structures entered twice (same atom count and volume per atom, every Si site a twin): {len(pairs)} pairs, "
          f"{sum(pair['groups'][0] == pair['groups'][1] for pair in pairs)} of them in one group; "
          f"mean label difference "
          f"|Δ| per pair: " + ", ".join(f"{value:.2f}" for value in sorted(offsets)) + " ppm")
    for pair in sorted(pairs, key=lambda pair: -abs(pair["mean_gap_ppm"])):
        print(f"  {pair['formula']:>14s} structures {pair['structures']} groups {pair['groups']}: "
              f"{pair['si_sites']} Si, "
              f"largest site distance {pair['max_distance']:.1e}, Δ {pair['mean_gap_ppm']:+.2f} ppm "
              f"({pair['gap_range_ppm'][0]:+.2f} … {pair['gap_range_ppm'][1]:+.2f})")
    check = result["v2_outer_rescaling"]
    if check is not None:
        print(f"\nv2 outer run ({check['n']} sites, counted before; diagnostic only): factors c passing both bands: "
              f"{len(check['factors_passing_both_bands'])}; 95 % / 68.27 % quantile of |e|/u = "
              f"{check['quantile_95']:.2f} / {check['quantile_68']:.2f} = {check['quantile_ratio']:.2f} "
              f"(Gaussian 1.96); kurtosis of e/u {check['kurtosis']:.1f}; with c at the 68 % quantile, ±2c covers "
              f"{100 * check['coverage_2c_at_68_quantile']:.1f} %. ±u / ±2u: "
              f"{100 * check['coverage_1u_2u'][0]:.1f} / {100 * check['coverage_1u_2u'][1]:.1f} % of all sites, "
              f"{100 * check['coverage_1u_2u_without_conflicting'][0]:.1f} / "
              f"{100 * check['coverage_1u_2u_without_conflicting'][1]:.1f} % of the {check['n_without_conflicting']} "
              f"without a conflicting twin (kurtosis {check['kurtosis_without_conflicting']:.1f})")
    print(f"\n{result['cpu_s']:.1f} s CPU")


if __name__ == "__main__":
    main()
