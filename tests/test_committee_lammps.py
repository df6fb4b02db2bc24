"""fix nmr/ml committee columns (19: σiso spread, ppm; 20: |CQ| spread, MHz; 21: Vzz-axis
flag) on a 256-atom Al/O box: equal to ``NMRModel.predict`` of a committee model on the
dumped frames (≤ 1e-10 relative, 2 ranks, CQ of 27Al through the isotope keyword), and NaN
for a model without a committee (a second fix in the same run)."""
from __future__ import annotations

import shutil

import numpy as np
from ase.io import read

from ase_mlnmr.nmr_model import NMRModel

from lammps_plugin_helpers import (N_STANDARD_COLUMNS, built_plugin, rattled_al_o_structure, run_lammps,
                                   trained_al_model, write_data_file)

EVERY = 2
COMMITTEE_COLUMNS = {"ms_iso_std": 19, "cq_std": 20, "vzz_axis_flag": 21}


def train_committee_model(path):
    from ase_mlnmr.examples import load_mp_al27
    from ase_mlnmr.training.fitting import train_model

    config = {"descriptor": {"r_cut": 4.0, "n_max": 3, "l_max": 3, "sigma": 0.5, "mixing_channels": 3},
              "species": {"Al": {"properties": ["efg", "ms_iso"]}}, "ms_iso": {"n_inducing": 40},
              "ood": {"n_inducing": 40}, "committee": {"size": 8, "fraction": 0.5, "seed": 3}}
    return train_model(load_mp_al27(), config, progress=False).save(path)


def test_fix_committee_columns_equal_the_model_and_are_nan_without_a_committee(tmp_path):
    assert N_STANDARD_COLUMNS == max(COMMITTEE_COLUMNS.values())
    train_committee_model(tmp_path / "committee.npz")
    shutil.copy(trained_al_model(), tmp_path / "plain.npz")
    write_data_file(rattled_al_o_structure(), tmp_path / "data.lmp")
    columns = " ".join(f"f_{fix}[{k}]" for fix in ("c", "p") for k in (1, 3, *COMMITTEE_COLUMNS.values()))
    script = (f"plugin load {built_plugin()}\nunits metal\natom_style atomic\nboundary p p p\nread_data data.lmp\n"
              "mass 1 26.98\nmass 2 16.0\nvelocity all create 3000 4 loop geom\ntimestep 0.002\n"
              "pair_style zero 3.0\npair_coeff * *\nneighbor 1.0 bin\ncomm_modify cutoff 6.5\nfix nve all nve\n"
              f"fix c all nmr/ml {EVERY} committee.npz elements Al O isotope Al 27Al skip_unknown yes\n"
              f"fix p all nmr/ml {EVERY} plain.npz elements Al O skip_unknown yes\n"
              f"dump d all custom {EVERY} dump.nmr id type x y z {columns}\n"
              "dump_modify d format float %.17g sort id\nrun 6\n")
    result = run_lammps(tmp_path, script, ranks=2)
    assert result.returncode == 0, result.stdout + result.stderr
    model = NMRModel.load(tmp_path / "committee.npz")
    images = read(tmp_path / "dump.nmr", ":", format="lammps-dump-text")
    assert len(images) == 4
    lines = (tmp_path / "dump.nmr").read_text().splitlines()
    n = len(images[0])
    for f, atoms in enumerate(images):
        start = f * (n + 9) + 9
        rows = np.array([[float(v) for v in line.split()] for line in lines[start:start + n]])
        atoms.set_chemical_symbols(["Al" if t == 1 else "O" for t in rows[:, 1].astype(int)])
        prediction = model.predict(atoms, unknown_species="skip")
        al = rows[:, 1] == 1
        committee = dict(zip(["ms_iso", "cq", *COMMITTEE_COLUMNS], rows[:, 5:10].T))
        plain = dict(zip(["ms_iso", "cq", *COMMITTEE_COLUMNS], rows[:, 10:15].T))
        np.testing.assert_allclose(committee["ms_iso"][al], prediction.ms_iso[al], rtol=1e-10)
        for name in ("ms_iso_std", "cq_std"):
            expected = getattr(prediction, name)[al]
            assert np.all(np.isfinite(expected)) and np.all(expected > 0), name
            np.testing.assert_allclose(committee[name][al], expected, rtol=0, atol=1e-10 * expected.max(),
                                       err_msg=name)
        np.testing.assert_array_equal(committee["vzz_axis_flag"][al], prediction.vzz_axis_flag[al])
        for name in COMMITTEE_COLUMNS:
            assert np.isnan(committee[name][~al]).all(), name    # O: no model
            assert np.isnan(plain[name]).all(), name             # no committee: NaN
        assert np.isfinite(plain["ms_iso"][al]).all()
