"""A small sodium aluminosilicate glass (NaAlSi3O8 composition) by melt–quench in LAMMPS.

Potential: Pedone, Malavasi, Menziani, Cormack, Segre, J. Phys. Chem. B 110, 11780
(2006), doi:10.1021/jp0611018 — partial charges (Si 2.4, Al 1.8, Na 0.6, O −1.2 e) with
U(r) = qᵢqⱼe²/r + D[(1 − e^(−a(r − r0)))² − 1] + C/r¹², short-range terms between cations
and O and between O and O only (LAMMPS ``pair_style pedone`` + ``coul/long``, PPPM).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.io import write

from .settings import DemoSettings

__all__ = ["SPECORDER", "CHARGES_E", "PEDONE", "FORMULA_UNIT", "random_glass_box", "pair_lines",
           "melt_quench_input", "write_glass_data"]

#: LAMMPS atom types 1..4 (ASE's data writer orders types the same way).
SPECORDER = ["Al", "Na", "O", "Si"]
#: Pedone 2006 partial charges (e).
CHARGES_E = {"Al": 1.8, "Na": 0.6, "O": -1.2, "Si": 2.4}
#: Pedone 2006, table values: D (eV), a (1/Å), r0 (Å), C (eV·Å¹²) per cation–O and O–O pair.
PEDONE = {("Al", "O"): (0.361581, 1.900442, 2.164818, 0.9),
          ("Na", "O"): (0.023363, 1.763867, 3.006315, 5.0),
          ("O", "O"): (0.042395, 1.379316, 3.618701, 22.0),
          ("O", "Si"): (0.340554, 2.006700, 2.100000, 1.0)}
FORMULA_UNIT = {"Na": 1, "Al": 1, "Si": 3, "O": 8}
#: Closest approach (Å) allowed when atoms are placed at random before the melt.
MIN_DISTANCE_A = 1.6


def random_glass_box(settings: DemoSettings) -> Atoms:
    """NaAlSi3O8 × n atoms placed at random (no pair closer than 1.6 Å) in a cubic box of
    edge L = (m / ρ)^(1/3), m the total mass: the starting point of the melt."""
    symbols = [e for e, k in FORMULA_UNIT.items() for _ in range(k * settings.n_formula_units)]
    mass_g = sum(atomic_masses[atomic_numbers[s]] for s in symbols) / 6.02214076e23
    edge = (mass_g / settings.density_g_cm3) ** (1 / 3) * 1e8  # Å
    rng = np.random.default_rng(settings.seed)
    positions = np.empty((len(symbols), 3))
    placed = 0
    while placed < len(symbols):
        trial = rng.uniform(0.0, edge, 3)
        delta = positions[:placed] - trial
        delta -= edge * np.round(delta / edge)
        if placed == 0 or np.min(np.einsum("ij,ij->i", delta, delta)) >= MIN_DISTANCE_A ** 2:
            positions[placed] = trial
            placed += 1
    atoms = Atoms(symbols, positions=positions, cell=[edge] * 3, pbc=True)
    return atoms[np.argsort([SPECORDER.index(s) for s in symbols], kind="stable")]


def write_glass_data(atoms: Atoms, path: Path) -> Path:
    """LAMMPS data file (atom_style charge, types in :data:`SPECORDER`, masses)."""
    write(path, atoms, format="lammps-data", atom_style="charge", specorder=SPECORDER, masses=True)
    return path


def pair_lines() -> list[str]:
    """LAMMPS lines of the Pedone potential for the types of :data:`SPECORDER`."""
    types = {e: k + 1 for k, e in enumerate(SPECORDER)}
    lines = [f"set type {types[e]} charge {q}" for e, q in CHARGES_E.items()]
    lines += ["# Pedone et al., J. Phys. Chem. B 110, 11780 (2006), doi:10.1021/jp0611018",
              "pair_style hybrid/overlay pedone 5.5 coul/long 8.0", "pair_coeff * * coul/long"]
    for (a, b), (d, alpha, r0, c) in PEDONE.items():
        i, j = sorted((types[a], types[b]))
        lines.append(f"pair_coeff {i} {j} pedone {d} {alpha} {r0} {c}  # {a}-{b}: D a r0 C")
    lines += ["kspace_style pppm 1.0e-4", "neighbor 2.0 bin", "neigh_modify every 1 delay 0 check yes"]
    return lines


def melt_quench_input(random_data: str, glass_data: str, settings: DemoSettings) -> str:
    """LAMMPS input: relax the random box with capped displacements, melt at
    ``melt_temperature_K`` (NVT), quench linearly to 300 K (NVT), write the glass."""
    hot, dt_ps = settings.melt_temperature_K, settings.timestep_fs / 1000
    lines = ["# melt-quench of a NaAlSi3O8 glass (ase-mlnmr demo)", "units metal", "atom_style charge",
             "boundary p p p", f"read_data {random_data}", *pair_lines(), f"timestep {dt_ps}",
             "thermo 500", "thermo_style custom step temp pe press",
             f"velocity all create {hot} {settings.seed} mom yes rot yes dist gaussian",
             "fix relax all nve/limit 0.05", f"fix hot all temp/rescale 10 {hot} {hot} 50 1.0", "run 500",
             "unfix relax", "unfix hot",
             f"fix melt all nvt temp {hot} {hot} 0.1", f"run {settings.melt_steps}", "unfix melt",
             f"fix quench all nvt temp {hot} 300.0 0.1", f"run {settings.quench_steps}", "unfix quench",
             f"write_data {glass_data}"]
    return "\n".join(lines) + "\n"
