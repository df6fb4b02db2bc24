"""Training configuration: the one home of every default, and its validation.

A config is a JSON object. Its sections (``descriptor``, ``ms_iso``, ``ms_aniso``,
``ms_antisym``, ``efg``, ``ood``, ``selection``, ``rules``, ``committee``) hold settings whose name, type,
allowed values and default are declared once in :data:`SCHEMA`; ``species`` holds
per-element overrides of the same sections plus ``properties``; ``neighbour_species``,
``calibration`` and ``isotopes`` complete it. :func:`validate_config` rejects unknown keys
and values (naming the valid ones) and returns the config with every default filled in;
``docs/models.md`` documents every entry.
"""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..descriptors import LambdaSOAP, SOAP, atomic_number_of, random_species_mixing
from ..models.committee import CALIBRATIONS, MIN_COMMITTEE_SIZE
from ..nmr_model import PROPERTIES

__all__ = ["ConfigError", "Option", "SCHEMA", "SECTIONS", "DEFAULT_CONFIG", "ALPHA_GRID",
           "AUTO_FEATURE_SCALINGS", "validate_config", "section_settings", "merge_config", "species_config",
           "descriptor_parameters", "minimum_structures"]


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the key and the valid choices."""


@dataclass(frozen=True)
class Option:
    """One setting: its default, a description of the allowed values, and the check that
    returns the normalised value or raises ``ValueError`` saying what is wrong."""

    default: Any
    allowed: str
    check: Callable[[Any], Any]


def _number(minimum: float | None = None, *, integer: bool = False, strict: bool = True,
            none: bool = False, auto: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and none:
            return None
        if value == "auto" and auto:
            return "auto"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        if integer:
            if float(value) != int(value):
                raise ValueError(f"expected an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise ValueError(f"expected a number {'>' if strict else '>='} {minimum}, got {value!r}")
        return value
    return check


def _choice(*values: Any) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) and not all(isinstance(v, bool) for v in values):
            raise ValueError(f"expected one of {list(values)}, got {value!r}")
        if value not in values:
            raise ValueError(f"expected one of {list(values)}, got {value!r}")
        return value
    return check


def _boolean(none: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and none:
            return None
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    return check


def _committee_size(value: Any) -> int:
    size = _number(None, integer=True)(value)
    if size != 0 and size < MIN_COMMITTEE_SIZE:
        raise ValueError(f"expected 0 (no committee) or at least {MIN_COMMITTEE_SIZE} members, got {value!r}")
    return size


def _fraction(value: Any) -> float:
    fraction = _number(0.0)(value)
    if fraction >= 1.0:
        raise ValueError(f"expected a fraction strictly between 0 and 1, got {value!r}")
    return fraction


def _radial_scaling(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"r0", "exponent"}:
        raise ValueError(f'expected null or {{"r0": Å, "exponent": m}}, got {value!r}')
    return {"r0": _number(0.0)(value["r0"]), "exponent": _number(0.0)(value["exponent"])}


def _alpha_grid(value: Any) -> list[float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(f"expected a non-empty list of ridge values > 0, got {value!r}")
    grid = [_number(0.0)(v) for v in value]
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"expected increasing ridge values, got {value!r}")
    return grid


def _scalings(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(f"expected a non-empty list of feature scalings, got {value!r}")
    return [_choice("per_feature", "global", "none")(v) for v in value]


#: Ridge values tried by ``alpha: "auto"`` for the equivariant (λ-SOAP) models (half decades, 1e-6 … 1e4).
ALPHA_GRID = tuple(10.0 ** (k / 2) for k in range(-12, 9))

#: Feature scalings tried by ``feature_scaling: "auto"`` (with ``alpha: "auto"``).
AUTO_FEATURE_SCALINGS = ("per_feature", "global")

_ALPHA = Option("auto", '"auto" or a number > 0', _number(0.0, auto=True))
_SCALING = Option("auto", '"auto", "per_feature", "global" or "none"', _choice("auto", "per_feature", "global", "none"))
_TWO_BODY = Option(True, "true or false", _boolean())

#: Every setting of every section: {section: {key: Option}}. The one home of the defaults.
SCHEMA: dict[str, dict[str, Option]] = {
    "descriptor": {
        "r_cut": Option(5.0, "cut-off radius in Å, > 0", _number(0.0)),
        "n_max": Option(6, "number of radial functions, integer >= 1", _number(0, integer=True)),
        "l_max": Option(4, "largest angular momentum, integer >= 0", _number(0, integer=True, strict=False)),
        "sigma": Option(0.4, "Gaussian width of the atomic density in Å, > 0", _number(0.0)),
        "mixing_channels": Option(None, "null or an integer >= 1", _number(0, integer=True, none=True)),
        "mixing_seed": Option(0, "an integer", _number(None, integer=True)),
        "radial_scaling": Option(None, 'null or {"r0": Å, "exponent": m}', _radial_scaling),
    },
    "ms_iso": {
        "regressor": Option("nystrom", '"nystrom" or "linear"', _choice("nystrom", "linear")),
        "kernel": Option("gaussian", '"gaussian" or "dot_product"', _choice("gaussian", "dot_product")),
        "zeta": Option(2, "integer >= 1 (dot-product kernel)", _number(0, integer=True)),
        "n_inducing": Option(2000, "integer >= 1", _number(0, integer=True)),
        "ridge": Option(1e-6, "number > 0", _number(0.0)),
        "length_scale": Option(None, "null (from the data) or a number > 0", _number(0.0, none=True)),
        "length_scale_factor": Option(1.0, "number > 0", _number(0.0)),
        "normalize_features": Option(False, "true or false", _boolean()),
        "standardize_features": Option(None, "null (kernel default), true or false", _boolean(none=True)),
        "alpha": Option(1e-6, 'number > 0 (regressor "linear")', _number(0.0)),
    },
    "ms_aniso": {"alpha": _ALPHA, "feature_scaling": _SCALING, "two_body": _TWO_BODY},
    "ms_antisym": {"alpha": _ALPHA, "feature_scaling": _SCALING},
    "efg": {"alpha": _ALPHA, "feature_scaling": _SCALING, "two_body": _TWO_BODY},
    "ood": {
        "n_inducing": Option(500, "integer >= 1", _number(0, integer=True)),
        "length_scale": Option(None, "null (from the data) or a number > 0", _number(0.0, none=True)),
        "length_scale_factor": Option(1.0, "number > 0", _number(0.0)),
        "ridge": Option(1e-6, "number > 0", _number(0.0)),
    },
    "selection": {
        "n_splits": Option(5, "integer >= 2", _number(1, integer=True)),
        "alpha_grid": Option(list(ALPHA_GRID), "increasing list of numbers > 0", _alpha_grid),
        "auto_feature_scalings": Option(list(AUTO_FEATURE_SCALINGS), 'list of "per_feature", "global", "none"',
                                        _scalings),
        "alpha_search": Option("walk", '"walk" or "grid"', _choice("walk", "grid")),
    },
    "rules": {
        "min_structures": Option("auto", '"auto" (max(3, n_splits) with alpha "auto", else 3) or an integer >= 1',
                                 _number(0, integer=True, auto=True)),
        "min_sites": Option(10, "integer >= 1", _number(0, integer=True)),
        "max_abs_shielding_ppm": Option(1e5, "number > 0", _number(0.0)),
        "max_abs_efg_au": Option(1e3, "number > 0", _number(0.0)),
    },
    "committee": {
        "size": Option(0, f"0 (off) or an integer >= {MIN_COMMITTEE_SIZE}: members per property model",
                       _committee_size),
        "fraction": Option(0.5, "fraction of the groups (structures) each member is fitted on, in (0, 1)",
                           _fraction),
        "seed": Option(0, "an integer (the draw of the members' groups)", _number(None, integer=True)),
        "calibration": Option("scale", '"scale" (u = α·std), "power" (u = sqrt(a² s^2b + c²), fitted on the '
                              "full model's out-of-sample residuals) or \"power_eiv\" (the same law, fitted with "
                              "the spreads' sampling noise and shrunk towards a constant σ by cross-validation)",
                              _choice(*CALIBRATIONS)),
    },
}

#: Sections of settings (top level and per species).
SECTIONS = tuple(SCHEMA)

#: The defaults of every section (built from :data:`SCHEMA`; JSON-able).
DEFAULT_CONFIG: dict[str, dict[str, Any]] = {
    section: {key: json.loads(json.dumps(option.default)) for key, option in options.items()}
    for section, options in SCHEMA.items()
}

_TOP_LEVEL = SECTIONS + ("species", "neighbour_species", "calibration", "isotopes")
_SPECIES_KEYS = ("properties",) + SECTIONS


def _unknown(kind: str, name: Any, valid: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a JSON object {{...}}, got {type(value).__name__} {value!r}"[:300])
    return value


def _element(symbol: Any, where: str) -> str:
    try:
        if not isinstance(symbol, str):
            raise ValueError
        atomic_number_of(symbol)
    except ValueError:
        raise ConfigError(f"{where}: {symbol!r} is not an element symbol (e.g. 'Al', 'O')") from None
    return symbol


def _section(name: str, values: Any, where: str) -> dict[str, Any]:
    """Checked and normalised settings of one section (only the keys given)."""
    options = SCHEMA[name]
    out = {}
    for key, value in _mapping(values, where).items():
        if key not in options:
            raise _unknown(f"key in {where}", key, list(options))
        try:
            out[key] = options[key].check(value)
        except ValueError as error:
            raise ConfigError(f"{where}.{key}: {error}; allowed: {options[key].allowed}") from None
    return out


def section_settings(name: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of section ``name``: the defaults overridden by ``config[name]`` (checked)."""
    given = _section(name, (config or {}).get(name) or {}, name)
    return {**DEFAULT_CONFIG[name], **given}


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (override wins); used for per-species settings."""
    merged = json.loads(json.dumps(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = json.loads(json.dumps(value))
    return merged


def _check_descriptor(settings: Mapping[str, Any], where: str, config: Mapping[str, Any]) -> None:
    """Descriptor ranges, checked by building the descriptors once (one dummy species):
    the power spectrum always, the λ = 2 features of the properties listed explicitly."""
    parameters = descriptor_parameters(["H"], {"descriptor": settings})
    try:
        SOAP(["H"], **parameters)
        for prop in set(config.get("properties") or ()) & {"ms_aniso", "efg"}:
            LambdaSOAP(["H"], lam=2, two_body=bool(config[prop]["two_body"]), **parameters)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def _species_entry(element: str, entry: Any, base: Mapping[str, Any]) -> dict[str, Any]:
    where = f"species.{element}"
    entry = _mapping(entry if entry is not None else {}, where)
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key not in _SPECIES_KEYS:
            raise _unknown(f"key in {where}", key, list(_SPECIES_KEYS))
        if key == "properties":
            if value is None:
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
                raise ConfigError(f"{where}.properties must be a non-empty list of {list(PROPERTIES)}, "
                                  f"got {value!r}")
            for prop in value:
                if prop not in PROPERTIES:
                    raise _unknown(f"property in {where}.properties", prop, list(PROPERTIES))
            if len(set(value)) != len(value):
                raise ConfigError(f"{where}.properties lists a property twice: {value!r}")
            out[key] = list(value)
        else:
            out[key] = _section(key, value, f"{where}.{key}")
    merged = merge_config(base, out)
    _check_descriptor(merged["descriptor"], f"{where}.descriptor", merged)
    return out


def validate_config(config: Any) -> dict[str, Any]:
    """The complete, checked config: every default filled in, every value normalised.

    Raises :class:`ConfigError` for a config that is not a JSON object, unknown keys
    (listing the valid ones), values of the wrong type or range (saying what is allowed),
    per-species entries that are not objects, unknown elements or isotopes.
    """
    if config is None:
        config = {}
    config = _mapping(config, "the training config")
    for key in config:
        if key not in _TOP_LEVEL:
            raise _unknown("config key", key, list(_TOP_LEVEL))
    out: dict[str, Any] = {name: section_settings(name, config) for name in SECTIONS}
    _check_descriptor(out["descriptor"], "descriptor", out)
    neighbours = config.get("neighbour_species")
    if neighbours is not None:
        if isinstance(neighbours, (str, bytes)) or not isinstance(neighbours, Sequence) or len(neighbours) == 0:
            raise ConfigError(f"neighbour_species must be a non-empty list of element symbols, got {neighbours!r}")
        if len(set(neighbours)) != len(neighbours):
            raise ConfigError(f"neighbour_species lists an element twice: {neighbours!r}")
        neighbours = [_element(s, "neighbour_species") for s in neighbours]
    out["neighbour_species"] = neighbours
    species = config.get("species")
    if species is not None:
        species = _mapping(species, "species (per-element settings, e.g. {\"Al\": {\"properties\": [\"efg\"]}})")
        if len(species) == 0:
            species = None
        else:
            species = {_element(el, "species"): _species_entry(el, entry, out) for el, entry in species.items()}
    out["species"] = species
    calibration = {}
    for element, entry in _mapping(config.get("calibration") or {}, "calibration").items():
        _element(element, "calibration")
        entry = _mapping(entry, f"calibration.{element}")
        if set(entry) != {"slope", "sigma_ref"}:
            raise ConfigError(f'calibration.{element} must be {{"slope": a, "sigma_ref": ppm}}, got {dict(entry)!r}')
        try:
            calibration[element] = {k: _number()(entry[k]) for k in ("slope", "sigma_ref")}
        except ValueError as error:
            raise ConfigError(f"calibration.{element}: {error}") from None
    out["calibration"] = calibration or None
    isotopes = {}
    for element, name in _mapping(config.get("isotopes") or {}, "isotopes").items():
        from ..nmr.isotopes import default_quadrupolar_isotope

        _element(element, "isotopes")
        try:
            isotopes[element] = default_quadrupolar_isotope(element, {element: name}).name
        except (KeyError, ValueError, TypeError) as error:
            raise ConfigError(f"isotopes.{element}: {str(error).strip(chr(34) + chr(39))}") from None
    out["isotopes"] = isotopes or None
    return out


def species_config(config: Mapping[str, Any], element: str) -> dict[str, Any]:
    """Settings of one centre element: its ``species`` entry merged over the top level."""
    own = (config.get("species") or {}).get(element) or {}
    return merge_config({k: v for k, v in config.items() if k != "species"}, own)


def minimum_structures(settings: Mapping[str, Any], prop: str) -> int:
    """``rules.min_structures`` of a property: ``"auto"`` is max(3, n_splits) when α is
    chosen by cross-validation (``alpha: "auto"``), else 3."""
    rule = settings["rules"]["min_structures"]
    if rule != "auto":
        return int(rule)
    cross_validated = prop != "ms_iso" and settings[prop]["alpha"] == "auto"
    return max(3, int(settings["selection"]["n_splits"])) if cross_validated else 3


def descriptor_parameters(neighbours: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """Descriptor keyword arguments from a config; ``mixing_channels: K`` (with optional
    ``mixing_seed``) compresses the neighbour species into K random orthonormal channels."""
    parameters = {**DEFAULT_CONFIG["descriptor"], **config["descriptor"]}
    channels = parameters.pop("mixing_channels", None)
    seed = int(parameters.pop("mixing_seed", 0))
    if channels is not None and int(channels) < len(neighbours):
        parameters["species_mixing"] = random_species_mixing(len(neighbours), int(channels), seed)
    return parameters
