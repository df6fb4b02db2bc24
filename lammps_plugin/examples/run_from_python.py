"""The 300 K run of in.nmr_300K driven from Python (`from lammps import lammps`), on as
many MPI ranks as it is started with:

    mpiexec -n 2 python run_from_python.py

Importing lammps runs the lammps.plugins entry point of ase_mlnmr (preloads MPICH's
libmpi, exports the evaluator's location), so fix nmr/ml is registered without a
`plugin load` line. Rank 0 prints the per-element means and the EFG scaling factor."""
from lammps import lammps

lmp = lammps(cmdargs=["-log", "log.python", "-screen", "none"])
lmp.file("in.nmr_300K")
names = ["OOD count", "Na delta", "Na |CQ|", "Na sqrt(P)", "Al delta_iso (ppm)", "Al mean |CQ| (MHz)",
         "Al sqrt(P)"]
values = [lmp.extract_fix("nmr", 0, 1, k) for k in range(len(names))]    # global vector of the fix
if lmp.extract_setting("world_rank") == 0:
    for name, value in zip(names, values):
        print(f"{name:>20s}: {value:.6g}")
lmp.close()
