"""Train the example model on the embedded mp_al27 data (13 Al-bearing oxides, MIT
licence): 27Al σiso (Nyström kernel ridge, with the δiso calibration of
ase_mlnmr.examples.mp_al27_al_calibration and the OOD score) and the Al EFG (λ-SOAP).
Writes model.npz. A demonstration model: 13 crystals do not cover a glass's Al sites."""
from ase_mlnmr.examples import load_mp_al27, mp_al27_al_calibration
from ase_mlnmr.training.fitting import train_model

data = load_mp_al27()
config = {"descriptor": {"r_cut": 5.0, "n_max": 4, "l_max": 3, "sigma": 0.5, "mixing_channels": 4},
          "species": {"Al": {"properties": ["efg", "ms_iso"]}},
          "ms_iso": {"n_inducing": 60}, "ood": {"n_inducing": 60},
          "calibration": {"Al": mp_al27_al_calibration(data)}}
path = train_model(data, config).save("model.npz")
print(f"wrote {path}")
