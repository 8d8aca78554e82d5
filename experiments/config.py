"""Configuration: omegaconf YAML merged base -> <stage>.yaml -> presets -> command-line ``key=value``.

Presets are looked up as ``configs/<stage>/<name>.yaml`` first, then ``configs/<name>.yaml`` (presets
valid for every stage, e.g. ``debug``). A file may inherit: ``_base_: other.yaml`` (a path relative to the
file, or a list of them) merges the parent(s) first, so the file states only what differs; a section
holding ``_delete_: true`` replaces the parent's section instead of merging into it. A section may inherit
a whole file the same way (``_base_: tracking.yaml`` inside it, ``_drop_: [keys]`` leaving out some of the
file's keys), so that one file is the home of a group of settings used in several places. After the stage
file the config is in struct mode, so a preset or an override that names an unknown key fails with a
message naming the key, its source and the closest valid keys; every value is then checked (types,
choices, ranges: :func:`check_values`).
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf
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


BASE_KEY = "_base_"        # a file's or a section's parent config(s), relative to the file's folder
DELETE_KEY = "_delete_"    # in a section of a child file: replace the parent's section instead of merging
DROP_KEY = "_drop_"        # beside _base_: top-level keys of the parent file(s) to leave out
MARKERS = (BASE_KEY, DELETE_KEY, DROP_KEY)


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


def _merge_file_dicts(parent: dict, child: dict, path: Path, where: str = "",
                      chain: tuple[Path, ...] = ()) -> dict:
    """``child`` (read from ``path``) over ``parent``, recursively: mappings merge key by key (a child
    mapping holding ``_delete_: true`` replaces the parent's instead), anything else replaces. A child
    mapping holding ``_base_`` starts from that file (minus its ``_drop_`` keys) with its own keys over it.
    ``chain``: the files being composed (a ``_base_`` back to one of them is a cycle)."""
    out = dict(parent)
    for k, v in child.items():
        if isinstance(v, dict):
            replace = v.get(DELETE_KEY, False)
            if not isinstance(replace, bool):
                raise ConfigError(f"{path}: {where}{k}.{DELETE_KEY} must be true or false")
            inherited = _inherited(v.get(BASE_KEY), v.get(DROP_KEY), path, f"{where}{k}.", chain)
            v = _merge_file_dicts(inherited, {kk: vv for kk, vv in v.items() if kk not in MARKERS}, path,
                                  f"{where}{k}.", chain)                # strips nested markers
            if not replace and isinstance(out.get(k), dict):
                v = _merge_file_dicts(out[k], v, path, f"{where}{k}.")
        out[k] = v
    return out


def _inherited(bases, drop, path: Path, where: str, chain: tuple[Path, ...]) -> dict:
    """The ``_base_`` file(s) of a file or of one of its sections (``where``: the section's key and a dot),
    composed in order, without the keys listed in ``_drop_``; {} without ``_base_``."""
    if bases is None:
        if drop is not None:
            raise ConfigError(f"{path}: {where}{DROP_KEY} needs a {BASE_KEY} beside it")
        return {}
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: {where}{BASE_KEY} must be a file name or a list of them, got {bases!r}")
    merged: dict = {}
    for b in bases:
        base_path = path.parent / b
        if not base_path.is_file():
            raise ConfigError(f"{path}: {where}{BASE_KEY} file {b!r} not found (looked for {base_path})")
        merged = _merge_file_dicts(merged, _compose(base_path, chain), base_path)
    drop = [drop] if isinstance(drop, str) else drop
    if drop is not None and not (isinstance(drop, list) and all(isinstance(d, str) for d in drop)):
        raise ConfigError(f"{path}: {where}{DROP_KEY} must be a key or a list of keys, got {drop!r}")
    for d in drop or []:
        if d not in merged:
            raise ConfigError(f"{path}: {where}{DROP_KEY}: {d!r} is not a key of {', '.join(bases)}")
        del merged[d]
    return merged


def _compose(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A config file with its ``_base_`` parents merged in (parents in order, then the file)."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: {BASE_KEY} cycle: {' -> '.join(p.name for p in (*chain, path))}")
    own = _read_yaml(path)
    chain = (*chain, path)
    inherited = _inherited(own.pop(BASE_KEY, None), own.pop(DROP_KEY, None), path, "", chain)
    return _merge_file_dicts(inherited, own, path, chain=chain)


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


# ------------------------------------------------------------------------------------------ value checks
#
# Every value of a loaded config is checked: its type against the types the key has in base.yaml, the
# stage file and the stage's presets (int where a float is expected is fine; a key null in some file may be
# null), or against TYPES where those are wider than what the files show; values with a fixed set of
# choices against CHOICES; numbers against RANGES. The choices that mirror a core definition are checked
# against it by tests/test_config.py (kept here so that loading a config imports no torch).

TYPES: dict[str, tuple[str, ...]] = {
    "run_id": ("str", "int"), "resume": ("str",), "cpu_threads": ("int",), "seed": ("int",),
    "trainer.devices": ("int", "str", "list"), "trainer.precision": ("str", "int"),
    "trainer.max_time": ("str", "dict"), "trainer.fast_dev_run": ("bool", "int"),
    "trainer.limit_train_batches": ("int", "float"), "trainer.limit_val_batches": ("int", "float"),
    "trainer.val_check_interval": ("int", "float"), "trainer.gradient_clip_val": ("int", "float"),
    "trainer.deterministic": ("bool", "str"), "trainer.check_val_every_n_epoch": ("int",),
    "logger.entity": ("str",), "logger.group": ("str",), "checkpoint.monitor": ("str",),
    "checkpoint.every_n_train_steps": ("int",), "checkpoint.every_minutes": ("float", "int"),
    "model.pretrained": ("str",), "model.init_ckpt": ("str",),
    "model.siamese_ckpt": ("str",), "data.det_file": ("str",), "data.train_max_images": ("int",),
    "data.val_max_images": ("int",), "data.val_batch_size": ("int",), "val.oks_nms": ("float",),
    "data.augment.crop_scale": ("list",),
    "data.num_workers": ("int", "str"), "data.pin_memory": ("bool", "str"),
}

#: keys that also take the string "auto", resolved on the machine that runs
#: (datamodules.workers.loader_settings, experiments.run.resolve_precision)
AUTO: tuple[str, ...] = ("data.num_workers", "data.pin_memory", "trainer.precision")

#: keys that may be null although no config file shows them null (null switches the feature off)
NULLABLE = {"checkpoint.every_minutes"}

CHOICES: dict[str, tuple] = {
    "data.train_format": ("coco", "posetrack"),
    "model.layout": ("coco", "posetrack"),
    "data.synth.preset": ("tiny", "small", "standard", "hard"),          # corrtrack.synth.presets.PRESETS
    "model.variant": ("paper", "release"),                              # corrtrack.nets.correspondence
    "model.normalize": ("l2", "squared", "none"),
    "model.descriptor": ("nearest", "bilinear"),                       # DESCRIPTOR_SAMPLING
    "model.net.stage2_input": ("features", "features+maps"),           # corrtrack.nets.pose.PoseNet
    "model.target.kind": ("disk", "gaussian"),                          # corrtrack.pose.encode_targets
    "checkpoint.mode": ("min", "max"),
    "trainer.accelerator": ("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "trainer.precision": ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed",
                          "bf16-true", "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16", 64, 32, 16,
                          "auto"),
}

_PROBABILITY = (0.0, 1.0)
RANGES: dict[str, tuple[float | None, float | None]] = {
    "seed": (0, 2 ** 32 - 1), "cpu_threads": (1, None),
    "data.batch_size": (1, None), "data.val_batch_size": (1, None), "data.num_workers": (0, None),
    "data.input_size": (1, None), "data.stride": (1, None), "data.max_persons": (1, None),
    "data.train_max_images": (1, None), "data.val_max_images": (1, None), "data.min_keypoints": (0, 17),
    "data.padding": (0, None), "data.det_min_score": (0, None), "data.synth.seed": (0, 2 ** 32 - 1),
    "trainer.max_steps": (-1, None), "trainer.max_epochs": (-1, None), "trainer.num_nodes": (1, None),
    "trainer.log_every_n_steps": (1, None), "trainer.check_val_every_n_epoch": (1, None),
    "trainer.accumulate_grad_batches": (1, None), "trainer.limit_train_batches": (0, None),
    "trainer.limit_val_batches": (0, None), "trainer.num_sanity_val_steps": (-1, None),
    "trainer.gradient_clip_val": (0, None),
    "optim.lr": (0, None), "optim.weight_decay": (0, None), "optim.gamma": (0, None),
    "checkpoint.save_top_k": (-1, None), "checkpoint.every_n_train_steps": (1, None),
    "checkpoint.every_minutes": (0, None),
    "figures.every_n_validations": (0, None), "figures.samples": (0, None),
    "val.oks_nms": _PROBABILITY,
    "model.width": (0, None), "model.net.width": (0, None), "model.feat_channels": (1, None),
    "model.vote_radius": (0, None),
    **{f"data.augment.{k}": _PROBABILITY for k in (
        "flip_prob", "crop_prob", "photometric", "blur", "occlude", "occlude_first", "temporal",
        "temporal_warp", "rotate_prob", "color_prob", "blur_prob")},
    "data.augment.temporal_gap": (1, None), "data.augment.max_rotate": (0, 180),
    "data.augment.max_translate": (0, None), "data.augment.shift": (0, None),
    "data.augment.margin": (0, None),
}
#: keys whose lower bound is exclusive (a positive number)
POSITIVE = {"checkpoint.every_minutes", "optim.lr", "optim.gamma", "model.width", "model.net.width",
            "data.padding"}

_KIND_TEXT = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
              "list": "a list", "dict": "a mapping"}


def _kind(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple, ListConfig)):
        return "list"
    if isinstance(v, (dict, DictConfig)):
        return "dict"
    return type(v).__name__


def _leaves(d: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


_SCHEMAS: dict[str, dict[str, tuple[set, bool, set]]] = {}


def schema(stage: str) -> dict[str, tuple[set, bool, set]]:
    """key -> (kinds of its values, may be null, kinds of list elements), from base.yaml, the stage file
    and every preset of the stage, each with the files it inherits from."""
    if stage not in _SCHEMAS:
        files = [CONFIG_DIR / "base.yaml", CONFIG_DIR / f"{stage}.yaml"] + \
            [preset_path(stage, p) for p in available_presets(stage)]
        out: dict[str, tuple[set, bool, set]] = {}
        for f in _with_bases(files):
            own = _read_yaml(f)
            own.pop(BASE_KEY, None)
            own.pop(DROP_KEY, None)
            for key, v in _leaves(_merge_file_dicts({}, own, f, chain=(f,))):
                kinds, nullable, elems = out.get(key, (set(), False, set()))
                k = _kind(v)
                if k is None or v == "???":
                    nullable = nullable or k is None
                else:
                    kinds = kinds | {k}
                if isinstance(v, list):
                    elems = elems | {_kind(e) for e in v if e is not None}
                out[key] = (kinds, nullable, elems)
        _SCHEMAS[stage] = out
    return _SCHEMAS[stage]


def _with_bases(files: list[Path]) -> list[Path]:
    """The files and, recursively, their ``_base_`` parents (each once)."""
    out: list[Path] = []
    todo = list(files)
    while todo:
        f = todo.pop(0).resolve()
        if f in out:
            continue
        out.append(f)
        bases = _read_yaml(f).get(BASE_KEY) or []
        todo += [f.parent / b for b in ([bases] if isinstance(bases, str) else bases)]
    return out


def _type_ok(kind: str | None, allowed) -> bool:
    return kind in allowed or (kind == "int" and "float" in allowed)


def _show(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def check_values(cfg: DictConfig, stage: str) -> None:
    """Raise ConfigError naming the key for the first value of a resolved ``cfg`` of the wrong type, not
    among its choices, or out of its range."""
    sch = schema(stage)
    values = OmegaConf.to_container(cfg, resolve=True)
    for key, v in _leaves(values):
        kinds, nullable, elems = sch.get(key, (set(), True, set()))
        allowed = set(TYPES.get(key, ())) or kinds
        k = _kind(v)
        if k is None:
            if not nullable and allowed and key not in NULLABLE:
                raise ConfigError(f"config key {key}: null is not allowed (expected {_expected(allowed)})")
            continue
        if k == "str" and key in AUTO and key not in CHOICES:
            if v != "auto":
                raise ConfigError(f"config key {key}: {_show(v)} is not "
                                  f"{_expected(allowed - {'str'})} or 'auto'")
            continue
        if allowed and not _type_ok(k, allowed):
            raise ConfigError(f"config key {key}: {_show(v)} is not {_expected(allowed)}")
        if k == "list" and elems:
            for e in v:
                if not _type_ok(_kind(e), elems):
                    raise ConfigError(f"config key {key}: element {_show(e)} of {v} is not "
                                      f"{_expected(elems)}")
        if key in CHOICES and v not in CHOICES[key]:
            shown = ", ".join(str(c) for c in dict.fromkeys(str(c) for c in CHOICES[key]))
            raise ConfigError(f"config key {key}: {_show(v)} is not one of: {shown}")
        if key in RANGES:
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    _check_range(key, x)
    _check_lightning(values)


def _expected(kinds) -> str:
    return " or ".join(_KIND_TEXT.get(k, k) for k in sorted(kinds))


def _check_range(key: str, x: float) -> None:
    lo, hi = RANGES[key]
    if (lo is not None and (x < lo or (key in POSITIVE and x <= lo))) or (hi is not None and x > hi):
        low = "" if lo is None else (f"> {lo}" if key in POSITIVE else f">= {lo}")
        high = "" if hi is None else f"<= {hi}"
        bounds = " and ".join(b for b in (low, high) if b)
        raise ConfigError(f"config key {key}: {x} is out of range (must be {bounds})")


def _check_lightning(values: dict) -> None:
    t = values.get("trainer", {})
    dev = t.get("devices")
    if isinstance(dev, int) and not isinstance(dev, bool) and dev != -1 and dev < 1:
        raise ConfigError(f"config key trainer.devices: {dev} is not allowed (a count >= 1, -1 for all, "
                          f"'auto', or a list of device indices)")
    if isinstance(dev, str) and dev != "auto" and \
            not all(p.strip().isdigit() for p in dev.split(",") if p.strip()):
        raise ConfigError(f"config key trainer.devices: {dev!r} is not 'auto', a count or device indices")
    strategy = t.get("strategy")
    if isinstance(strategy, str) and strategy not in ("auto", "ddp", "ddp_spawn", "fsdp", "deepspeed"):
        from pytorch_lightning.strategies import StrategyRegistry

        known = ["auto", *StrategyRegistry.available_strategies()]
        if strategy not in known:
            close = difflib.get_close_matches(strategy, known, n=3)
            hint = f"did you mean: {', '.join(close)}?" if close else f"one of: {', '.join(known)}"
            raise ConfigError(f"config key trainer.strategy: {strategy!r} is not a Lightning strategy; "
                              f"{hint}")
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"):
        v = t.get(key)
        if isinstance(v, float) and not 0.0 <= v <= 1.0:
            raise ConfigError(f"config key trainer.{key}: {v} is not allowed (a share of the batches in "
                              f"[0.0, 1.0] or a whole number of batches)")
    run_id = values.get("run_id")
    if run_id is not None and (str(run_id) in ("", ".", "..", "latest") or "/" in str(run_id)
                               or os.sep in str(run_id)):
        raise ConfigError(f"config key run_id: {str(run_id)!r} is not a folder name (no '/', not '.', '..' "
                          f"or 'latest')")
    mt = t.get("max_time")
    if isinstance(mt, str):
        parts = mt.split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"config key trainer.max_time: {mt!r} is not DD:HH:MM:SS "
                              f"(e.g. \"00:02:00:00\")")


def _check_missing(cfg: DictConfig, prefix: str = "") -> None:
    for k in cfg.keys():
        if OmegaConf.is_missing(cfg, k):
            raise ConfigError(f"config key {prefix}{k}: a value is required (it is ???); give it as "
                              f"{prefix}{k}=VALUE")
        node = cfg._get_node(k)
        if isinstance(node, DictConfig):
            _check_missing(node, f"{prefix}{k}.")


def load_config(stage: str, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> DictConfig:
    """Merge base -> stage -> presets (in order) -> ``key=value`` overrides; returns a struct config."""
    stage_file = CONFIG_DIR / f"{stage}.yaml"
    if not stage_file.is_file():
        raise ConfigError(f"unknown stage '{stage}'; available: {', '.join(available_stages())}")
    cfg = OmegaConf.merge(_load_yaml(CONFIG_DIR / "base.yaml"), _load_yaml(stage_file))
    OmegaConf.set_struct(cfg, True)
    for preset in presets:
        path = preset_path(stage, preset)
        own = _compose(Path(path))
        cfg = _merge_checked(cfg, OmegaConf.create(own), source=f"preset {path}")
        for key, value in _leaves(own):   # a preset's ??? makes the key required (a merge would keep the old value)
            if value == "???":
                OmegaConf.update(cfg, key, "???")
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, _, value = item.partition("=")
        if value.strip() == "???":   # omegaconf would merge it as "keep the old value": say so instead
            raise ConfigError(f"command line: {key}=???: give a value for config key {key} (??? is not one)")
    if overrides:
        try:
            dot = OmegaConf.from_dotlist(overrides)
        except OmegaConfBaseException as e:
            raise ConfigError(f"command line: {e}") from None
        cfg = _merge_checked(cfg, dot, source="command line")
    _check_missing(cfg)
    if cfg.stage != stage:
        raise ConfigError(f"{stage_file}: 'stage' must be '{stage}', found '{cfg.stage}'")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"cannot resolve config: {e}") from None
    check_values(cfg, stage)
    return cfg
