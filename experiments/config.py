"""Configuration: omegaconf YAML merged base -> <stage>.yaml -> presets -> command-line ``key=value``.

Presets are looked up as ``configs/<stage>/<name>.yaml`` first, then ``configs/<name>.yaml`` (presets
valid for every stage, e.g. ``debug``). After the stage file the config is in struct mode, so a preset
or an override that names an unknown key fails with a message naming the key, its source and the
closest valid keys.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A config file, preset or override is invalid; the message says which and why."""


def available_stages() -> list[str]:
    """Stages are the registered ones (experiments.stages.STAGES) that have a config file."""
    from experiments.stages import STAGES

    return sorted(s for s in STAGES if (CONFIG_DIR / f"{s}.yaml").is_file())


def available_presets(stage: str) -> list[str]:
    own = [p.stem for p in (CONFIG_DIR / stage).glob("*.yaml")] if (CONFIG_DIR / stage).is_dir() else []
    shared = [p.stem for p in CONFIG_DIR.glob("*.yaml")
              if p.stem not in ["base", "tracking"] + available_stages()]   # tracking.yaml: corrtrack.track's
    return sorted(set(own) | set(shared))


def _all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k in cfg.keys():
        full = f"{prefix}{k}"
        keys.append(full)
        node = cfg._get_node(k)
        if isinstance(node, DictConfig):
            keys.extend(_all_keys(node, full + "."))
    return keys


def _merge_checked(cfg: DictConfig, other: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, other)
    except (ConfigKeyError, ConfigAttributeError) as e:
        key = getattr(e, "full_key", None) or str(e)
        close = difflib.get_close_matches(str(key), _all_keys(cfg), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"{source}: unknown config key '{key}'.{hint}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{source}: {e}") from None


def _load_yaml(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml errors carry the line; keep them but name the file
        raise ConfigError(f"{path}: cannot parse YAML: {e}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping")
    return cfg


def preset_path(stage: str, preset: str) -> Path:
    for path in (CONFIG_DIR / stage / f"{preset}.yaml", CONFIG_DIR / f"{preset}.yaml"):
        if path.is_file():
            return path
    p = Path(preset)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    raise ConfigError(f"unknown preset '{preset}' for stage '{stage}'; available: "
                      f"{', '.join(available_presets(stage))} (or a path to a .yaml file)")


def load_config(stage: str, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> DictConfig:
    """Merge base -> stage -> presets (in order) -> ``key=value`` overrides; returns a struct config."""
    stage_file = CONFIG_DIR / f"{stage}.yaml"
    if not stage_file.is_file():
        raise ConfigError(f"unknown stage '{stage}'; available: {', '.join(available_stages())}")
    cfg = OmegaConf.merge(_load_yaml(CONFIG_DIR / "base.yaml"), _load_yaml(stage_file))
    OmegaConf.set_struct(cfg, True)
    for preset in presets:
        path = preset_path(stage, preset)
        cfg = _merge_checked(cfg, _load_yaml(path), source=f"preset {path}")
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
    if overrides:
        try:
            dot = OmegaConf.from_dotlist(overrides)
        except OmegaConfBaseException as e:
            raise ConfigError(f"command line: {e}") from None
        cfg = _merge_checked(cfg, dot, source="command line")
    if cfg.stage != stage:
        raise ConfigError(f"{stage_file}: 'stage' must be '{stage}', found '{cfg.stage}'")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"cannot resolve config: {e}") from None
    return cfg
