"""``ase-mlnmr demo``: the main job end to end on the embedded default.

1. train calibrated Al and O models on mp_al27 (cross-validation table, held-out check);
2. melt–quench a NaAlSi3O8 glass (Pedone potential, LAMMPS), then 300 K MD with
   ``fix nmr/ml`` on MPI ranks (NVT, then NVE correlation run);
3. EFG time-correlation functions and scaling factors from the fix's ``acf_file``,
   cross-checked by the trajectory tool on the dumped frames;
4. ²⁷Al MAS, ¹⁷O MAS, the ¹⁷O 3QMAS isotropic projection and the sheared 2D ¹⁷O and ²⁷Al
   3QMAS spectra, with and without vibrational scaling;
5. a report folder and a summary table of every file.

``ase_only`` replaces 2–3 by predictions on the held-out crystals (no MD, no scaling).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from ase.io import write

from ..calculator import attach_nmr_tensors, prediction_table
from ..spectra import Sites
from ..trajectory.correlation import read_result
from ..trajectory.readers import iter_frames
from . import report
from .al_coordination import al_sites, coordination_check, coordination_rows, format_checks
from .glass import SPECORDER, melt_quench_input, random_glass_box, write_glass_data
from .lammps_runner import run_lammps
from .md_stage import run_md
from .settings import DISCLAIMER, FULL, QUICK, DemoSettings
from .spectra_stage import B0_TESLA, simulate_demo_2d_spectra, simulate_demo_spectra
from .trajectory_stage import analyse_dump, compare_scaling, fix_scaling
from .training_stage import CALIBRATION_SOURCES, train_models

__all__ = ["run_demo", "DemoResult"]


class DemoResult(dict):
    """``files`` (path → description), ``scaling`` rows, ``summary`` text."""


class _Stages:
    """Numbered stage headers with elapsed wall time (progress)."""

    def __init__(self, total: int, show) -> None:
        self.total, self.show, self.k, self.start = total, show, 0, time.time()

    def __call__(self, title: str) -> None:
        self.k += 1
        self.show(f"\n[{self.k}/{self.total}] {title}  (t = {time.time() - self.start:.0f} s)")


def _last_frame(dump: Path):
    frame = None
    for frame in iter_frames(dump, type_map=dict(enumerate(SPECORDER, start=1))):
        pass
    return frame.atoms


def _sites(table: list[dict], element: str, isotope: str) -> Sites:
    rows = [r for r in table if r["element"] == element]
    return Sites(isotope, np.array([r["delta_iso_ppm"] for r in rows], dtype=float),
                 np.array([r["cq_MHz"] for r in rows], dtype=float), np.array([r["eta_q"] for r in rows], dtype=float))


def _values(table: list[dict], elements) -> dict[str, dict[str, np.ndarray]]:
    return {e: {k: np.array([r[k] for r in table if r["element"] == e], dtype=float)
                for k in ("delta_iso_ppm", "cq_MHz", "eta_q", "ood")} for e in elements}


def run_demo(output: str | Path = "ase_mlnmr_demo", quick: bool = False, ase_only: bool = False,
             quiet: bool = False, settings: DemoSettings | None = None, show=print) -> DemoResult:
    """Run the demo into ``output``; returns the files written (see module docstring)."""
    settings = settings or (QUICK if quick else FULL)
    output = Path(output)
    for sub in ("model", "spectra", "plots", "tables") + (() if ase_only else ("lammps",)):
        (output / sub).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    stage = _Stages(4 if ase_only else 6, show)
    progress = not quiet
    show(DISCLAIMER)

    stage("training Al and O models on mp_al27 (σiso + δiso calibration, EFG)")
    trained = train_models(output / "model", settings.cv_folds, progress=progress, show=show,
                           predictions_folder=output)
    for path in trained.held_out_files:
        files[str(path)] = ("held-out crystals: per-atom σiso, δiso, CQ, η, OOD (model trained on the other 10)"
                            if path.suffix == ".csv" else "held-out crystal with predicted σ and EFG (magres)")
    model = trained.model
    isotopes = trained.config["isotopes"]
    files[str(trained.model_path)] = "model file (npz + JSON metadata, SHA-256): Al, O σiso + EFG, calibrations"
    cv_rows = [{"property": p, "element": e, "metric": m, "mean": v["mean"], "std": v["std"]}
               for p, per in trained.cv_summary.items() for e, row in per.items() for m, v in row.items()]
    files[str(report.write_csv(output / "tables" / "cross_validation.csv", cv_rows))] = \
        f"{settings.cv_folds}-fold cross-validation over the 13 crystals (mean, std of folds)"
    calibration_rows = [{"element": e, "isotope": isotopes[e], "slope": c["slope"], "sigma_ref_ppm": c["sigma_ref"],
                         "source": CALIBRATION_SOURCES[e]} for e, c in trained.config["calibration"].items()]
    files[str(report.write_csv(output / "tables" / "calibration.csv", calibration_rows))] = \
        "δiso = −a(σiso − σref) per nucleus, with the source of σref"
    files[str(report.plot_parity(trained.held_out_pairs, trained.config["calibration"], isotopes,
                                 output / "plots" / "parity.png"))] = "held-out parity: δiso and CQ, Al and O"

    scaling = {"Al": 1.0, "O": 1.0}
    if ase_only:
        stage("ASE only: the held-out crystals as predicted by the model trained on the other 10 (no LAMMPS, "
              "no MD, no vibrational scaling)")
        table = []
        for atoms in trained.held_out_structures:
            atoms = atoms.copy()
            for name in ("ms", "efg"):
                atoms.arrays.pop(name, None)
            prediction = attach_nmr_tensors(atoms, trained.held_out_model, unknown_species="skip")
            table += [{"structure": atoms.get_chemical_formula(), **row} for row in prediction_table(atoms, prediction)]
        last = None
    else:
        stage(f"melt–quench of NaAlSi3O8 × {settings.n_formula_units} "
              f"({13 * settings.n_formula_units} atoms), Pedone potential, LAMMPS on {settings.mpi_ranks} ranks")
        lammps = output / "lammps"
        write_glass_data(random_glass_box(settings), lammps / "random.data")
        (lammps / "melt.in").write_text(melt_quench_input("random.data", "glass.data", settings))
        log = run_lammps(lammps / "melt.in", settings.mpi_ranks, show if progress else None)
        files[str(lammps / "random.data")] = "random NaAlSi3O8 box, start of the melt (LAMMPS data file)"
        files[str(lammps / "melt.in")] = "LAMMPS input: melt-quench (Pedone 2006 potential)"
        files[str(log)] = "LAMMPS log of the melt-quench"
        files[str(lammps / "glass.data")] = "the quenched glass (LAMMPS data file)"

        stage(f"300 K MD with fix nmr/ml on {settings.mpi_ranks} MPI ranks: NVT {settings.equilibration_steps} "
              f"steps, then NVE {settings.correlation_steps} steps, EFG every {settings.sample_every} steps "
              f"({settings.sample_every * settings.timestep_fs:g} fs)")
        md = run_md(lammps, lammps / "glass.data", trained.model_path.resolve(), settings,
                    show=show if progress else None)
        files[str(md.input)] = "LAMMPS input: NVT + NVE with fix nmr/ml"
        files[str(md.log)] = "LAMMPS log of the MD (thermo: fix's mean δiso, CQ, √P per element)"
        files[str(md.trajectory)] = "positions every EFG sample, %.17g (for the trajectory tool)"
        files[str(md.fix_columns)] = "fix nmr/ml per-atom columns at the first and last step"
        files[str(md.acf)] = "fix nmr/ml on-the-fly G_EFG(s), G_δ(s) and scaling factors (acf_file)"

        stage("EFG correlation and scaling factors: the fix's acf_file, cross-checked by the trajectory tool")
        tool = analyse_dump(md.trajectory, model, output / "trajectory", settings.timestep_fs, progress=progress)
        for path in sorted(p for p in (output / "trajectory").rglob("*") if p.is_file()):
            files[str(path)] = "trajectory tool output (docs/trajectory.md)"
        fix = fix_scaling(md.acf)
        rows = compare_scaling(fix, tool.scaling)
        files[str(report.write_csv(output / "tables" / "scaling_factors.csv", rows))] = \
            "P and √P per element: fix vs trajectory tool, tolerance"
        for row in rows:
            show(f"  {row['element']}: fix P = {row['P_fix']}, tool P = {row['P_tool']}, "
                 f"within tolerance: {row.get('agree')}")
            if row["cq_scale_fix"] is not None:
                scaling[row["element"]] = row["cq_scale_fix"]
        tables = {"fix (multiple-tau)": read_result(md.acf)[1],
                  "trajectory tool (FFT)": read_result(output / "trajectory" / "correlation_fft.csv")[1]}
        plateaus = {"fix (multiple-tau)": fix, "trajectory tool (FFT)": tool.scaling}
        files[str(report.plot_correlations(tables, plateaus, output / "plots" / "g_efg.png"))] = \
            "G_EFG(s) per element with its plateau: fix and trajectory tool"
        last = _last_frame(md.trajectory)
        prediction = attach_nmr_tensors(last, model, unknown_species="skip")
        table = prediction_table(last, prediction)

    al_checks, al_rows = list(trained.al_checks), list(trained.al_rows)
    if last is not None:
        glass = al_sites("model, glass (last MD frame)", [last], [prediction.delta_iso[last.numbers == 13]],
                         ["glass"])
        al_checks.append(coordination_check(
            glass, trained.al_reference_model_ppm,
            f"MODEL result (trained on the 13 crystals; held-out 27Al δiso MAE "
            f"{trained.held_out_metrics['ms']['Al']['sigma_iso_mae_ppm']:.0f} ppm); reference = the model's δiso of "
            "the Al(H2O)6 3+ site"))
        al_rows += coordination_rows(glass)
    files[str(report.write_csv(output / "tables" / "al_coordination_check.csv", al_checks,
                               list(dict.fromkeys(k for c in al_checks for k in c))))] = \
        "27Al AlO4 − AlO6 reference vs the 50-70 ppm window: DFT and model (held out, glass), ppm"
    files[str(report.write_csv(output / "tables" / "al_coordination_sites.csv", al_rows))] = \
        "27Al δiso per structure and Al-O coordination (O within 2.3 Å): n, mean, min, max (ppm)"

    stage("²⁷Al MAS, ¹⁷O MAS, ¹⁷O 3QMAS (isotropic projection) and ¹⁷O, ²⁷Al sheared 2D 3QMAS spectra"
          + ("" if ase_only else ", with and without vibrational scaling"))
    sites = {"27Al": _sites(table, "Al", "27Al"), "17O": _sites(table, "O", "17O")}
    spectra = simulate_demo_spectra(sites, {"27Al": scaling["Al"], "17O": scaling["O"]}, progress=False)
    for s in spectra:
        if ase_only:
            s.scaled = None
        files[str(s.frozen.to_csv(output / "spectra" / f"{s.name}_frozen.csv"))] = \
            f"{s.isotope} {s.experiment} spectrum, frozen EFG (ppm, unit area)"
        if s.scaled is not None:
            files[str(s.scaled.to_csv(output / "spectra" / f"{s.name}_scaled.csv"))] = \
                f"{s.isotope} {s.experiment} spectrum, |CQ| × {s.cq_scale:.3f} (ppm, unit area)"
    files[str(report.plot_spectra_panels(spectra, output / "plots" / "spectra.png"))] = \
        "27Al MAS, 17O MAS, 17O 3QMAS isotropic projection"
    for s2d in simulate_demo_2d_spectra(sites, None if ase_only else {"27Al": scaling["Al"], "17O": scaling["O"]}):
        for path in s2d.to_npz(output / "spectra"):
            version = "frozen EFG" if path.stem.endswith("_frozen") else f"|CQ| × {s2d.cq_scale:.3f}"
            files[str(path)] = (f"{s2d.isotope} sheared 3QMAS, {version}: ppm_f2, ppm_f1, intensity[F1, F2] "
                                "(per ppm², unit volume)")
        files[str(report.plot_mqmas_panels(s2d, B0_TESLA, output / "plots" / f"{s2d.name}.png"))] = \
            f"{s2d.isotope} sheared 3QMAS contours, F1 (AF isotropic) vs F2 (MAS) in ppm" + \
            ("" if s2d.scaled is None else ", frozen EFG and |CQ| × √P")

    stage("report")
    name = "held_out_crystals" if ase_only else "glass_last_frame"
    files[str(report.write_csv(output / "tables" / f"{name}_predictions.csv", table))] = \
        "per-atom σiso, δiso, CQ, η, OOD score of the " + ("held-out crystals" if ase_only else "last frame")
    values = _values(table, ("Al", "O"))
    files[str(report.plot_distributions(values, output / "plots" / "distributions.png"))] = \
        "δiso, |CQ|, η distributions, Al and O"
    scores = {e: v["ood"][np.isfinite(v["ood"])] for e, v in values.items()}
    files[str(report.plot_ood(scores, model.ood_threshold, output / "plots" / "out_of_domain.png"))] = \
        f"OOD scores and the fraction of atoms above {model.ood_threshold:g}"
    ood_rows = [{"element": e, "atoms": s.size, "threshold": model.ood_threshold,
                 "fraction_above": float(np.mean(s > model.ood_threshold)) if s.size else None}
                for e, s in scores.items()]
    files[str(report.write_csv(output / "tables" / "out_of_domain.csv", ood_rows))] = \
        "fraction of atoms over the out-of-domain threshold"
    if last is not None:
        files[str(_write_magres(last, prediction, output / "glass_last_frame_Al_O.magres"))] = \
            "last MD frame: the Al and O atoms with the σ and EFG predicted in the whole frame (magres)"
    summary_path = output / "summary.txt"
    files[str(summary_path)] = "this summary (the table printed at the end)"
    files[str(output / "summary.json")] = "the files, the calibrations and the 27Al coordination check, as JSON"
    (output / "summary.json").write_text(json.dumps({"disclaimer": DISCLAIMER, "files": files,
                                                     "calibration": calibration_rows,
                                                     "al_coordination_check": al_checks}, indent=1))
    summary = report.summary_table(files, output)
    summary_path.write_text(summary + "\n")
    show("\n" + format_checks(al_checks))
    show("\n" + summary)
    return DemoResult(files=files, summary=summary, scaling=scaling)


def _write_magres(atoms, prediction, path: Path) -> Path:
    """Magres file of the atoms that have a model (Al, O), with the tensors predicted in
    the whole frame. Si and Na are left out: ASE's magres reader cannot read blocks with
    missing atoms back (README, "Limitations")."""
    keep = np.flatnonzero(prediction.ms_mask & prediction.efg_mask)
    subset = atoms[keep]
    for name, values in (("ms", prediction.ms), ("efg", prediction.efg)):
        subset.arrays.pop(name, None)
        subset.new_array(name, np.asarray(values[keep], dtype=float))
    write(path, subset, format="magres")
    return path
