"""Training configuration: the defaults of every setting, and merging user settings over them.

A config is a JSON-able mapping; ``species`` holds per-element overrides that are merged
over the top level (see ``docs/models.md``).
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..descriptors import random_species_mixing

__all__ = ["DEFAULT_CONFIG", "merge_config", "descriptor_parameters"]

DEFAULT_CONFIG: dict[str, Any] = {
    "descriptor": {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.4},
    "ms_iso": {"regressor": "nystrom", "kernel": "gaussian", "n_inducing": 2000, "length_scale_factor": 1.0, "ridge": 1e-6},
    "ms_aniso": {"alpha": "auto", "feature_scaling": "auto", "two_body": True},
    "ms_antisym": {"alpha": "auto", "feature_scaling": "auto"},
    "efg": {"alpha": "auto", "feature_scaling": "auto", "two_body": True},
    "ood": {"n_inducing": 500, "length_scale_factor": 1.0},
}


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (override wins); used for per-species settings."""
    merged = json.loads(json.dumps(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = json.loads(json.dumps(value))
    return merged


def descriptor_parameters(neighbours: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """Descriptor keyword arguments from a config; ``mixing_channels: K`` (with optional
    ``mixing_seed``) compresses the neighbour species into K random orthonormal channels."""
    parameters = dict(config["descriptor"])
    channels = parameters.pop("mixing_channels", None)
    seed = int(parameters.pop("mixing_seed", 0))
    if channels is not None and int(channels) < len(neighbours):
        parameters["species_mixing"] = random_species_mixing(len(neighbours), int(channels), seed)
    return parameters
