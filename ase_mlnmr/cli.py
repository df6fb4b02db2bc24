"""Command line: ``ase-mlnmr <command>``.

Commands
--------
demo      run the main job on the embedded default (see README)
features  SOAP power spectrum or λ-SOAP features of structures, saved as .npz
"""
from __future__ import annotations

import argparse
import sys
import time
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
    parser.add_argument("--r-cut", type=float, default=5.0, help="cut-off radius in Å (default 5)")
    parser.add_argument("--n-max", type=int, default=6, help="radial functions per l (default 6)")
    parser.add_argument("--l-max", type=int, default=4, help="highest l (default 4)")
    parser.add_argument("--sigma", type=float, default=0.4, help="Gaussian width σ in Å (default 0.4)")


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

    from .descriptors import LambdaSOAP, SOAP

    structures = _read_structures(args.structures)
    species = args.species or sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
    options = dict(r_cut=args.r_cut, n_max=args.n_max, l_max=args.l_max, sigma=args.sigma)
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


def default_structure(n_formula_units: int = 360, seed: int = 7):
    """The embedded default: a random Na2Si2O5 packing at 2.5 g/cm³ (min. distance 1.5 Å).

    Not a relaxed glass: a reproducible stand-in of the benchmark box, 9 atoms per formula unit.
    """
    from ase import Atoms

    rng = np.random.default_rng(seed)
    symbols = ["Na"] * (2 * n_formula_units) + ["Si"] * (2 * n_formula_units) + ["O"] * (5 * n_formula_units)
    masses = Atoms(symbols).get_masses().sum()  # amu
    length = (masses * 1.66053906660 / 2.5) ** (1.0 / 3.0)  # Å: amu·1.6605 / (g/cm³) = Å³
    cell_count = max(1, int(length // 1.5))
    grid: dict[tuple[int, int, int], list[np.ndarray]] = {}
    positions = []
    while len(positions) < len(symbols):
        trial = rng.random(3) * length
        key = tuple((trial // (length / cell_count)).astype(int) % cell_count)
        ok = True
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    neighbour_key = ((key[0] + dx) % cell_count, (key[1] + dy) % cell_count, (key[2] + dz) % cell_count)
                    for other in grid.get(neighbour_key, ()):
                        delta = trial - other
                        delta -= length * np.round(delta / length)
                        if delta @ delta < 1.5**2:
                            ok = False
                            break
                    if not ok:
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            grid.setdefault(key, []).append(trial)
            positions.append(trial)
    return Atoms(symbols, positions=positions, cell=[length] * 3, pbc=True)


def command_demo(args: argparse.Namespace) -> int:
    from .descriptors import LambdaSOAP, SOAP

    atoms = default_structure()
    print(f"embedded default: random Na2Si2O5 packing, {len(atoms)} atoms, cell {atoms.cell.lengths()[0]:.2f} Å")
    soap = SOAP(["Na", "Si", "O"], r_cut=5.0, n_max=6, l_max=4, sigma=0.4)
    start = time.perf_counter()
    features = soap.create(atoms)
    elapsed = time.perf_counter() - start
    print(f"SOAP power spectrum: {features.shape[1]} features for {len(atoms)} atoms in {elapsed:.3f} s "
          f"({len(atoms) / elapsed:,.0f} atoms/s)")
    descriptor = LambdaSOAP(["Na", "Si", "O"], r_cut=5.0, n_max=6, l_max=4, sigma=0.4)
    weights = np.random.default_rng(0).normal(size=descriptor.n_features) / descriptor.n_features
    start = time.perf_counter()
    tensors = descriptor.contract_tensors(atoms, weights)
    elapsed = time.perf_counter() - start
    print(f"contracted λ=2 linear model ({descriptor.n_features} features, random weights): "
          f"{len(atoms)} traceless tensors in {elapsed:.3f} s; max |trace| {np.abs(np.trace(tensors, axis1=1, axis2=2)).max():.1e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ase-mlnmr", description="Machine-learned solid-state NMR tensors")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the main job on the embedded default")
    demo.set_defaults(run=command_demo)

    features = commands.add_parser("features", help="compute SOAP / λ-SOAP features of structures")
    features.add_argument("structures", nargs="+", help="structure files ASE can read")
    features.add_argument("--kind", choices=("soap", "lambda"), default="soap")
    features.add_argument("--lam", type=int, default=2, help="λ for --kind lambda (default 2)")
    features.add_argument("--centres", nargs="*", default=None, help="centre elements (default all atoms)")
    features.add_argument("-o", "--output", default="features.npz", help="output .npz file")
    features.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_descriptor_options(features)
    features.set_defaults(run=command_features)
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
