"""Command line: ``ase-mlnmr <command>``.

Commands
--------
demo      the main job on the embedded default: mp_al27 models, glass MD with fix nmr/ml, spectra
train     fit a model on DFT tensors (magres / extended XYZ) and a JSON config
evaluate  metrics table and parity plots (PNG) of a model on DFT tensors
predict   tensors for structures: magres or extended XYZ, plus a per-atom CSV of δiso, CQ, η
features  SOAP power spectrum or λ-SOAP features of structures, saved as .npz
spectrum  MAS / static / 3QMAS spectra from sites or structures (ase_mlnmr.spectra.cli)
trajectory  NMR along an MD trajectory: time averages, G(s), vibrational scaling (trajectory/cli.py)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["main", "build_parser"]


class CommandError(Exception):
    """A user error in the command line (bad option value, missing file)."""


def _parse_species(text: str) -> list[str]:
    species = [s.strip() for s in text.split(",") if s.strip()]
    if not species:
        raise argparse.ArgumentTypeError(f"--species needs a comma-separated list of elements, got {text!r}")
    return species


def _add_descriptor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--species", type=_parse_species, default=None,
                        help="neighbour elements, comma separated (default: all elements found)")
    # defaults (None here): the training config's descriptor section, their one home
    parser.add_argument("--r-cut", type=float, help="cut-off radius in Å (default: descriptor.r_cut, 5)")
    parser.add_argument("--n-max", type=int, help="radial functions per l (default: descriptor.n_max, 6)")
    parser.add_argument("--l-max", type=int, help="highest l (default: descriptor.l_max, 4)")
    parser.add_argument("--sigma", type=float, help="Gaussian width σ in Å (default: descriptor.sigma, 0.4)")
    parser.add_argument("--mixing-channels", type=int, default=None, metavar="K",
                        help="compress the neighbour species into K random orthonormal channels")


def _read_structures(paths: Sequence[str]):
    from ase.io import read

    structures = []
    for path in paths:
        if not Path(path).exists():
            raise CommandError(f"structure file not found: {path}")
        try:
            structures.extend(read(path, ":"))
        except Exception as error:  # ASE raises many types for unreadable files
            raise CommandError(f"cannot read structures from {path}: {error}") from error
    return structures


def command_features(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .descriptors import LambdaSOAP, SOAP, random_species_mixing
    from .training.config import DEFAULT_CONFIG

    structures = _read_structures(args.structures)
    species = args.species or sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
    default = DEFAULT_CONFIG["descriptor"]
    options = {key: default[key] if getattr(args, key) is None else getattr(args, key)
               for key in ("r_cut", "n_max", "l_max", "sigma")}
    if args.mixing_channels is not None:
        if not 0 < args.mixing_channels:
            raise CommandError(f"--mixing-channels must be a positive integer, got {args.mixing_channels}")
        options["species_mixing"] = random_species_mixing(len(species), args.mixing_channels, default["mixing_seed"])
    try:
        descriptor = SOAP(species, **options) if args.kind == "soap" else LambdaSOAP(species, lam=args.lam, **options)
    except ValueError as error:
        raise CommandError(str(error)) from error
    blocks = []
    for atoms in tqdm(structures, desc="features", unit="structure", disable=args.quiet):
        try:
            blocks.append(descriptor.create(atoms, centres=args.centres))
        except ValueError as error:
            raise CommandError(f"{error}") from error
    np.savez(args.output, features=np.concatenate(blocks), parameters=str(descriptor.get_parameters()))
    print(f"wrote {sum(len(b) for b in blocks)} feature rows ({descriptor.n_features} features) to {args.output}")
    return 0


def _check_output_file(path: str | Path) -> Path:
    """Refuse, before any work, an output file that cannot be written (its folder missing
    or read-only, or the name taken by a folder): a failed write at the end would throw
    the work away."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"cannot write {path}: it is a folder, give a file name")
    _check_output_folder(path.parent if str(path.parent) else Path("."), create=False, what=f"cannot write {path}")
    if path.exists() and not os.access(path, os.W_OK):
        raise CommandError(f"cannot write {path}: the file is read-only")
    return path


def _check_output_folder(path: str | Path, create: bool = True, what: str | None = None) -> Path:
    """Create the output folder (if ``create``) and check that a file can be made in it."""
    path = Path(path)
    what = what or f"cannot write into the output folder {path}"
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.is_dir():
            raise CommandError(f"{what}: the folder {path} does not exist")
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise CommandError(f"{what}: cannot create a file in {path} ({error.strerror or error})") from error
    return path


def _read_dataset(args: argparse.Namespace):
    from .training.dataset import read_tensor_dataset

    try:
        return read_tensor_dataset(args.files, ms_units=args.ms_units, efg_units=args.efg_units,
                                   symmetrise_shielding=not args.keep_antisymmetric,
                                   ms_convention=args.ms_convention)
    except (ValueError, FileNotFoundError, OSError) as error:
        raise CommandError(str(error)) from error


def _load_model(path: str):
    from .models.model_file import ModelFileError
    from .nmr_model import NMRModel

    try:
        return NMRModel.load(path)
    except ModelFileError as error:
        raise CommandError(str(error)) from error


def command_train(args: argparse.Namespace) -> int:
    import json
    import warnings

    from .nmr_model import NMRModel
    from .training.config import ConfigError, validate_config

    _check_output_file(args.output)
    config = {}
    if args.config:
        try:
            config = json.loads(Path(args.config).read_text())
        except FileNotFoundError as error:
            raise CommandError(f"config file not found: {args.config}") from error
        except json.JSONDecodeError as error:
            raise CommandError(f"config file {args.config} is not valid JSON: {error}") from error
        try:
            validate_config(config)
        except ConfigError as error:
            raise CommandError(f"config file {args.config}: {error}") from error
    dataset = _read_dataset(args)
    print(f"read {len(dataset)} structures: " + ", ".join(f"{dataset.n_tensors(p)} {p} tensors" for p in dataset.properties))
    extra = {}
    try:
        if args.cv:
            from .training.evaluation import metrics_table
            from .training.model_selection import cross_validate_model

            result = cross_validate_model(dataset, config, n_splits=args.cv, n_repeats=args.cv_repeats,
                                          progress=not args.quiet)
            extra["cross_validation"] = {"n_splits": args.cv, "n_repeats": result["n_repeats"],
                                         "summary": result["summary"]}
            means = {p: {e: {m: v["mean"] for m, v in row.items()} for e, row in per.items()}
                     for p, per in result["summary"].items()}
            print(f"{args.cv}-fold cross-validation over structures (mean of folds):")
            print(metrics_table(means))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = NMRModel.train(dataset, config, progress=not args.quiet)
        for warning in caught:
            print(f"{warning.message}")
    except ValueError as error:
        raise CommandError(str(error)) from error
    model.save(args.output, extra_metadata=extra)
    print(f"wrote {args.output}: elements {model.elements}, properties "
          + ", ".join(f"{e}:{'+'.join(model.properties_of(e))}" for e in model.elements))
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    import json

    from .training.evaluation import evaluate, metrics_table, parity_plots

    if args.plots:
        _check_output_folder(args.plots)
    if args.json:
        _check_output_file(args.json)
    model = _load_model(args.model)
    dataset = _read_dataset(args)
    try:
        metrics, pairs = evaluate(model, dataset, progress=not args.quiet,
                                  unknown_species="skip" if args.skip_unknown else "raise")
    except ValueError as error:
        raise CommandError(str(error)) from error
    if not metrics:
        raise CommandError(f"no atom of the model's elements {model.elements} carries a tensor in these files")
    print(metrics_table(metrics))
    if args.plots:
        for path in parity_plots(pairs, args.plots):
            print(f"parity plot: {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
    return 0


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["structure", "index", "element", "sigma_iso_ppm", "delta_iso_ppm",
                                                    "cq_MHz", "eta_q", "ood", "sigma_iso_std_ppm", "cq_std_MHz",
                                                    "pq_std_MHz", "vzz_axis_flag"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})


def predict_structures(model, structures, names, output: Path, fmt: str, unknown_species: str,
                       quiet: bool = False) -> list[Path]:
    """Predict and write one file per structure plus ``predictions.csv``; returns the paths."""
    from ase.io import write
    from tqdm import tqdm

    from .calculator import attach_nmr_tensors, prediction_table, write_extxyz_arrays
    from .nmr_model import UnknownSpeciesError

    output.mkdir(parents=True, exist_ok=True)
    rows, written = [], []
    for name, atoms in tqdm(list(zip(names, structures)), desc="predicting", unit="structure", disable=quiet):
        try:
            prediction = attach_nmr_tensors(atoms, model, unknown_species=unknown_species)
        except (UnknownSpeciesError, ValueError) as error:
            raise CommandError(f"{name}: {error}") from error
        target = output / f"{name}.{fmt}"
        if fmt == "magres":
            write(target, atoms, format="magres")
        else:
            write(target, write_extxyz_arrays(atoms, prediction), format="extxyz")
        written.append(target)
        rows += [{"structure": name, **row} for row in prediction_table(atoms, prediction)]
    table = output / "predictions.csv"
    _write_csv(table, rows)
    written.append(table)
    return written


def command_predict(args: argparse.Namespace) -> int:
    _check_output_folder(args.output)
    model = _load_model(args.model)
    structures, names = [], []
    for path in args.structures:
        frames = _read_structures([path])
        stem = Path(path).stem
        names += [stem if len(frames) == 1 else f"{stem}_{k}" for k in range(len(frames))]
        structures += frames
    written = predict_structures(model, structures, names, Path(args.output), args.format,
                                 "skip" if args.skip_unknown else "raise", args.quiet)
    print(f"wrote {len(written) - 1} {args.format} files and {written[-1]}")
    return 0


def command_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded default (:mod:`ase_mlnmr.demo`)."""
    from .demo import run_demo
    from .demo.md_stage import FixNotAvailableError
    from .demo.lammps_runner import LammpsRunError

    _check_output_folder(args.output)
    try:
        run_demo(args.output, quick=args.quick, ase_only=args.ase_only, quiet=args.quiet)
    except (FixNotAvailableError, LammpsRunError) as error:
        raise CommandError(str(error)) from error
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ase-mlnmr", description="Machine-learned solid-state NMR tensors")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the main job on the embedded default: train on mp_al27, glass MD with "
                                            "fix nmr/ml, EFG correlation, spectra, report")
    demo.add_argument("-o", "--output", default="ase_mlnmr_demo", help="output folder (default ase_mlnmr_demo)")
    demo.add_argument("--quick", action="store_true", help="fewer atoms and steps (~300-atom glass)")
    demo.add_argument("--ase-only", action="store_true",
                      help="no LAMMPS: train, predict the held-out crystals, spectra without vibrational scaling")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=command_demo)

    def add_data_options(sub):
        sub.add_argument("files", nargs="+", help="magres / extended XYZ files or glob patterns with DFT tensors")
        sub.add_argument("--ms-units", default=None, help="shielding units of extended XYZ files: ppm")
        sub.add_argument("--efg-units", default=None, help="EFG units of extended XYZ files: au or V/A^2")
        sub.add_argument("--ms-convention", choices=("shielding", "shift"), default="shielding",
                         help="what the ms numbers of extended XYZ files are: shielding σ (default) or "
                              "shift, −σ as VASP prints it (see docs/conventions.md)")
        sub.add_argument("--keep-antisymmetric", action="store_true",
                         help="keep the antisymmetric shielding part σ(1) (default: symmetrise)")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    train = commands.add_parser("train", help="fit a model on DFT tensors")
    add_data_options(train)
    train.add_argument("--config", default=None, help="JSON config (species, descriptor, per-property settings)")
    train.add_argument("-o", "--output", default="model.npz", help="model file to write (default model.npz)")
    train.add_argument("--cv", type=int, default=0, metavar="K",
                       help="K-fold cross-validation over structures first; metrics stored in the model file")
    train.add_argument("--cv-repeats", type=int, default=1, help="repeated shuffles of the folds (default 1)")
    train.set_defaults(run=command_train)

    evaluate_parser = commands.add_parser("evaluate", help="metrics table and parity plots of a model")
    evaluate_parser.add_argument("model", help="model file")
    add_data_options(evaluate_parser)
    evaluate_parser.add_argument("--plots", default="parity_plots", help="folder for parity plots (PNG)")
    evaluate_parser.add_argument("--json", default=None, help="also write the metrics as JSON")
    evaluate_parser.add_argument("--skip-unknown", action="store_true",
                                 help="skip structures holding elements the model was not built for "
                                      "instead of failing")
    evaluate_parser.set_defaults(run=command_evaluate)

    predict = commands.add_parser("predict", help="predict tensors for structures")
    predict.add_argument("model", help="model file")
    predict.add_argument("structures", nargs="+", help="structure files ASE can read")
    predict.add_argument("-o", "--output", default="predictions", help="output folder (default predictions)")
    predict.add_argument("--format", choices=("magres", "extxyz"), default="magres")
    predict.add_argument("--skip-unknown", action="store_true",
                         help="leave atoms of elements without a model unpredicted instead of failing")
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(run=command_predict)

    features = commands.add_parser("features", help="compute SOAP / λ-SOAP features of structures")
    features.add_argument("structures", nargs="+", help="structure files ASE can read")
    features.add_argument("--kind", choices=("soap", "lambda"), default="soap")
    features.add_argument("--lam", type=int, default=2, help="λ for --kind lambda (default 2)")
    features.add_argument("--centres", nargs="*", default=None, help="centre elements (default all atoms)")
    features.add_argument("-o", "--output", default="features.npz", help="output .npz file")
    features.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_descriptor_options(features)
    features.set_defaults(run=command_features)

    from .spectra.cli import add_spectrum_parser

    add_spectrum_parser(commands)
    from .trajectory.cli import add_trajectory_parser

    add_trajectory_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CommandError as error:
        print(f"ase-mlnmr {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
