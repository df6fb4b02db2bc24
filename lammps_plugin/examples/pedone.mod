# Pedone potential for oxide glasses: Pedone, Malavasi, Menziani, Cormack, Segre,
# J. Phys. Chem. B 110, 11780 (2006), doi:10.1021/jp0611018.
# U(r) = qi qj e^2/r + D[(1 - exp(-a(r - r0)))^2 - 1] + C/r^12 (cation-O and O-O only).
# Types: 1 Na (+0.6), 2 Al (+1.8), 3 Si (+2.4), 4 O (-1.2); units metal.
# Coulomb as damped shifted force (coul/dsf 0.25, 8 A): cheaper than coul/long + pppm, enough
# for a small demonstration glass.
set type 1 charge 0.6
set type 2 charge 1.8
set type 3 charge 2.4
set type 4 charge -1.2
pair_style hybrid/overlay pedone 5.5 coul/dsf 0.25 8.0
pair_coeff * * coul/dsf
#                 D (eV)   a (1/A)  r0 (A)   C (eV A^12)
pair_coeff 1 4 pedone 0.023363 1.763867 3.006315 5.0
pair_coeff 2 4 pedone 0.361581 1.900442 2.164818 0.9
pair_coeff 3 4 pedone 0.340554 2.006700 2.100000 1.0
pair_coeff 4 4 pedone 0.042395 1.379316 3.618701 22.0
