"""``ase-mlnmr spectrum``: spectra from structures with tensors or a per-site CSV.

Writes ``<output>.csv`` (ppm,intensity, area-normalised), ``<output>.png`` and, on request,
the mrsimulator spin systems (``--export-mrsim``). With ``--cq-scale`` the unscaled and
scaled MAS spectra are both written and plotted stacked. ``--experiment 3qmas`` also writes
the sheared 2D spectrum (``<output>_2d.npz``: ppm_f2, ppm_f1, intensity) and its contour plot.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["add_spectrum_parser", "command_spectrum", "auto_axis"]


class _Error(Exception):
    pass


def add_spectrum_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``spectrum`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser("spectrum", help="simulate MAS / static / 3QMAS spectra from sites or structures")
    p.add_argument("inputs", nargs="+", help="per-site CSV (delta_iso_ppm, cq_MHz or Cq_Hz, eta) or structure "
                                             "files with tensors (magres, extended XYZ with ms/efg arrays)")
    p.add_argument("--isotope", required=True, help="nucleus, e.g. 23Na, 27Al, 17O, 29Si")
    field = p.add_mutually_exclusive_group(required=True)
    field.add_argument("--b0", type=float, help="magnetic field B0 in T")
    field.add_argument("--larmor-1h", type=float, metavar="MHZ", help="1H Larmor frequency of the magnet in MHz")
    p.add_argument("--experiment", choices=("mas", "static", "3qmas-iso", "3qmas"), default="mas",
                   help="fast-MAS CT (default), static, 3QMAS isotropic projection, or sheared 3QMAS 2D")
    p.add_argument("--route", choices=("kde", "grid", "sites"), default="kde",
                   help="KDE on the lineshape grid (default), per-site weights on the grid, or exact per-site sum")
    p.add_argument("--bandwidth", default="scott", help="KDE bandwidth: 'scott' (default), a factor f (H = f² × covariance), or a "
                                                    "3x3 matrix H as 9 comma-separated numbers (δ ppm, |CQ| MHz, η)")
    p.add_argument("--sigma-ref", type=float, default=None, help="σref (ppm) for δ = −a(σ − σref) from structures")
    p.add_argument("--slope", type=float, default=1.0, help="calibration slope a (default 1)")
    p.add_argument("--model", default=None, help="take a and σref from this model file's calibration")
    p.add_argument("--efg-units", default="au", help="EFG units in extended XYZ files (default au)")
    p.add_argument("--cq-scale", default=None, help="vibrational factor on |CQ|: a number or a JSON file "
                                                     "with cq_scale per element")
    p.add_argument("--spinning-rate", type=float, default=float("inf"), metavar="HZ",
                   help="MAS rate in Hz for spin-1/2 spinning sidebands (default: infinitely fast)")
    p.add_argument("--lb", type=float, default=0.0, help="line broadening FWHM (default 0)")
    p.add_argument("--lb-unit", choices=("ppm", "Hz"), default="Hz")
    p.add_argument("--lb-shape", choices=("lorentzian", "gaussian"), default="lorentzian")
    p.add_argument("--ppm-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="ppm window (default: from the sites)")
    p.add_argument("--points", type=int, default=2048, help="points of the ppm axis (default 2048)")
    p.add_argument("--measured", default=None, help="measured spectrum CSV (ppm,intensity) to overlay")
    p.add_argument("--export-mrsim", default=None, metavar="JSON", help="also write the sites as mrsimulator "
                                                                         "spin systems")
    p.add_argument("-o", "--output", default="spectrum", help="output prefix (default 'spectrum')")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=command_spectrum)
    return p


def auto_axis(sites, spectrometer, experiment: str, points: int, margin_ppm: float = 0.0):
    """A ppm window holding every site's line (plus 10 % and ``margin_ppm``)."""
    from .axis import PPMAxis
    from .central_transition import _extent, alpha_nodes, ct_coefficients, ct_prefactor_ppm
    from .csa import principal_shifts
    from .mqmas import af_isotropic_shift

    d = sites.delta_iso_ppm
    lo, hi = float(d.min()), float(d.max())
    if sites.isotope.spin > 0.5 and np.any(sites.cq_MHz != 0):
        p = float(ct_prefactor_ppm(sites.abs_cq_MHz.max(), spectrometer))
        mode = "static" if experiment == "static" else "mas"
        g_lo, g_hi = np.inf, -np.inf
        for eta in np.linspace(0, 1, 11):
            low, high = _extent(*ct_coefficients(eta, alpha_nodes(64)[:, None], mode))
            g_lo, g_hi = min(g_lo, low), max(g_hi, high)
        lo, hi = lo + p * g_hi, hi + p * g_lo
        if experiment.startswith("3qmas"):
            f1 = af_isotropic_shift(d, sites.cq_MHz, sites.eta_q, spectrometer)
            lo, hi = min(lo, float(f1.min())), max(hi, float(f1.max()))
    elif experiment == "static":
        principal = principal_shifts(d, sites.csa_zeta_ppm, sites.csa_eta)
        lo, hi = float(principal.min()), float(principal.max())
    span = max(hi - lo, 1.0)
    return PPMAxis.from_range(lo - 0.1 * span - margin_ppm, hi + 0.1 * span + margin_ppm, points)


def _load_sites(args):
    from .io import sites_from_csv, sites_from_structures

    csvs = [p for p in args.inputs if p.lower().endswith(".csv")]
    others = [p for p in args.inputs if not p.lower().endswith(".csv")]
    if csvs and others:
        raise _Error("give either per-site CSV files or structure files, not both")
    for path in args.inputs:
        if not Path(path).exists():
            raise _Error(f"input file not found: {path}")
    if csvs:
        from .sites import Sites

        parts = [sites_from_csv(p, args.isotope) for p in csvs]
        return Sites(parts[0].isotope, np.concatenate([s.delta_iso_ppm for s in parts]),
                     np.concatenate([s.cq_MHz for s in parts]), np.concatenate([s.eta_q for s in parts]))
    from ase.io import read

    from ..nmr.isotopes import get_isotope
    from .io import model_calibration

    if args.model:
        if args.sigma_ref is not None:
            raise _Error("give either --model (its calibration) or --sigma-ref/--slope, not both")
        try:
            args.slope, args.sigma_ref = model_calibration(args.model, get_isotope(args.isotope).element)
        except FileNotFoundError as error:
            raise _Error(f"model file not found: {args.model}") from error
    structures = []
    for path in others:
        try:
            structures.extend(read(path, ":"))
        except Exception as error:  # ASE raises many types for unreadable files
            raise _Error(f"cannot read structures from {path}: {error}") from error
    return sites_from_structures(structures, args.isotope, sigma_ref=args.sigma_ref, slope=args.slope,
                                 efg_units=args.efg_units)


def command_spectrum(args: argparse.Namespace) -> int:
    import sys

    from .axis import PPMAxis, Spectrometer
    from .io import read_cq_scale, read_measured_spectrum
    from .plotting import plot_mqmas, plot_spectra, plot_stacked
    from .sites import SiteError
    from .simulate import simulate_spectrum

    try:
        spectrometer = (Spectrometer(args.isotope, args.b0) if args.b0 is not None
                        else Spectrometer.from_proton_frequency(args.isotope, args.larmor_1h))
        sites = _load_sites(args)
        scale = 1.0
        if args.cq_scale is not None:
            try:
                number = float(args.cq_scale)
            except ValueError:  # not a number: a JSON file
                scale = read_cq_scale(args.cq_scale, sites.isotope.element)
            else:
                scale = read_cq_scale(number, sites.isotope.element)
        try:
            if args.bandwidth == "scott":
                bandwidth = "scott"
            elif "," in args.bandwidth:
                bandwidth = np.array([float(v) for v in args.bandwidth.split(",")]).reshape(3, 3)
            else:
                bandwidth = float(args.bandwidth)
        except ValueError:
            raise _Error(f"--bandwidth must be 'scott', a positive factor or 9 comma-separated numbers (3x3 matrix "
                         f"over δiso ppm, |CQ| MHz, η), got {args.bandwidth!r}") from None
        if args.points < 16:
            raise _Error(f"--points must be at least 16, got {args.points}")
        if args.ppm_range:
            axis = PPMAxis.from_range(args.ppm_range[0], args.ppm_range[1], args.points)
        else:
            axis = auto_axis(sites, spectrometer, args.experiment, args.points)
        broadening = (args.lb, args.lb_unit, args.lb_shape) if args.lb > 0 else None
        measured = read_measured_spectrum(args.measured) if args.measured else None
        experiment = "3qmas-iso" if args.experiment == "3qmas" else args.experiment
        common = dict(route=args.route, bandwidth=bandwidth, broadening=broadening, progress=not args.quiet,
                      spinning_rate_Hz=args.spinning_rate)
        if not args.quiet:
            print(f"{len(sites)} {sites.isotope.name} sites, B0 = {spectrometer.b0_tesla:.4g} T, "
                  f"{experiment}, route {args.route}", file=sys.stderr)
        spectrum = simulate_spectrum(sites, spectrometer, axis, experiment, cq_scale=scale, **common)
    except (SiteError, ValueError, KeyError, FileNotFoundError, _Error) as error:
        print(f"ase-mlnmr spectrum: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [spectrum.to_csv(out.with_suffix(".csv"))]
    label = f"{sites.isotope.name} {experiment}" + (f", |CQ|×{scale:g}" if scale != 1.0 else "")
    note = "3QMAS intensities assume ideal excitation and conversion" if experiment == "3qmas-iso" else None
    if scale != 1.0:
        unscaled = simulate_spectrum(sites, spectrometer, axis, experiment, **common)
        written.append(unscaled.to_csv(out.with_name(out.name + "_unscaled.csv")))
        written.append(plot_stacked([unscaled, spectrum], [f"{sites.isotope.name} frozen EFG",
                                                           f"|CQ| × {scale:g} (vibrations)"],
                                    measured=measured, path=out.with_suffix(".png")))
    else:
        written.append(plot_spectra([spectrum], [label], measured=measured, note=note, path=out.with_suffix(".png")))
    if args.experiment == "3qmas":
        from .simulate import simulate_mqmas_2d

        f2 = PPMAxis(axis.start_ppm, axis.step_ppm, axis.count)
        z = simulate_mqmas_2d(sites, spectrometer, f2, args.route, bandwidth, cq_scale=scale, progress=not args.quiet)
        np.savez(out.with_name(out.name + "_2d.npz"), ppm_f2=f2.ppm, ppm_f1=f2.ppm, intensity=z)
        written.append(out.with_name(out.name + "_2d.npz"))
        written.append(plot_mqmas(f2.ppm, f2.ppm, z, measured=measured, path=out.with_name(out.name + "_2d.png")))
    if args.export_mrsim:
        from .mrsim import write_mrsimulator_json

        written.append(write_mrsimulator_json(sites.with_cq_scale(scale) if scale != 1.0 else sites,
                                              args.export_mrsim))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
