"""Configuration: omegaconf YAML merged base -> <stage>.yaml -> presets -> command-line ``key=value``.

Presets are looked up as ``configs/<stage>/<name>.yaml`` first, then ``configs/<name>.yaml`` (presets
valid for every stage, e.g. ``debug``). A file may inherit: ``_base_: other.yaml`` (a path relative to the
file, or a list of them) merges the parent(s) first, so the file states only what differs; a section
holding ``_delete_: true`` replaces the parent's section instead of merging into it. After the stage file the config is in struct mode, so a preset
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


BASE_KEY = "_base_"        # a file's parent config(s), relative to the file's folder
DELETE_KEY = "_delete_"    # in a section of a child file: replace the parent's section instead of merging


def _read_yaml(path: Path) -> dict:
    try:
        cfg = OmegaConf.load(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except Exception as e:  # yaml errors carry the line; keep them but name the file
        raise ConfigError(f"{path}: cannot parse YAML: {e}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping")
    # interpolations (${...}) and ??? stay as they are: they are resolved once, on the merged config
    return OmegaConf.to_container(cfg, resolve=False)


def _merge_file_dicts(parent: dict, child: dict, path: Path, where: str = "") -> dict:
    """``child`` over ``parent``, recursively: mappings merge key by key (a child mapping holding
    ``_delete_: true`` replaces the parent's instead), anything else replaces."""
    out = dict(parent)
    for k, v in child.items():
        if isinstance(v, dict):
            replace = v.get(DELETE_KEY, False)
            if not isinstance(replace, bool):
                raise ConfigError(f"{path}: {where}{k}.{DELETE_KEY} must be true or false")
            v = {kk: vv for kk, vv in v.items() if kk != DELETE_KEY}
            if not replace and isinstance(out.get(k), dict):
                v = _merge_file_dicts(out[k], v, path, f"{where}{k}.")
            else:
                v = _merge_file_dicts({}, v, path, f"{where}{k}.")   # strip nested markers
        out[k] = v
    return out


def _compose(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A config file with its ``_base_`` parents merged in (parents in order, then the file)."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: {BASE_KEY} cycle: {' -> '.join(p.name for p in (*chain, path))}")
    own = _read_yaml(path)
    bases = own.pop(BASE_KEY, None)
    if bases is None:
        return _merge_file_dicts({}, own, path)
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name or a list of them, got {bases!r}")
    merged: dict = {}
    for b in bases:
        base_path = path.parent / b
        if not base_path.is_file():
            raise ConfigError(f"{path}: {BASE_KEY} file {b!r} not found (looked for {base_path})")
        merged = _merge_file_dicts(merged, _compose(base_path, (*chain, path)), base_path)
    return _merge_file_dicts(merged, own, path)


def _load_yaml(path: Path) -> DictConfig:
    """A config file as omegaconf, its ``_base_`` chain composed (see :func:`_compose`)."""
    return OmegaConf.create(_compose(Path(path)))


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
