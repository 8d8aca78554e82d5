import json
import os
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from experiments.config import (CONFIG_DIR, ConfigError, _load_yaml, available_presets, available_stages,
                                load_config, preset_path)
from experiments.run import main


def test_base_stage_preset_override_order():
    for stage in available_stages():
        cfg = load_config(stage, ["debug"], ["trainer.max_steps=7", "seed=3"])
        assert cfg.stage == stage
        assert cfg.trainer.max_steps == 7        # command line beats the preset
        assert cfg.seed == 3
        assert cfg.data.synth.preset == "tiny"   # from the debug preset


def test_unknown_key_fails_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer.max_step'.*trainer.max_steps"):
        load_config(available_stages()[0], [], ["trainer.max_step=3"])


def test_unknown_stage_and_preset_and_malformed_override():
    with pytest.raises(ConfigError, match="unknown stage"):
        load_config("nope")
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config(available_stages()[0], ["nope"])
    assert main([available_stages()[0], "trainer.nonsense=1"]) == 2


# ------------------------------------------------------------------------------------------ inheritance

SNAPSHOT = Path(__file__).resolve().parent / "data" / "resolved_configs.json"
ENV_KEYS = ("CORRTRACK_OUTPUTS", "COCO_ROOT", "POSETRACK_ROOT", "CORRTRACK_SYNTH_ROOT", "SIAMESE_CKPT")


def _resolved_configs() -> dict[str, dict]:
    out = {}
    for stage in available_stages():
        for combo in [[]] + [[p] for p in available_presets(stage)] + [["paper", "cluster"], ["cpu", "debug"]]:
            if all(p in available_presets(stage) for p in combo):
                required = [f"{k}=given" for c in combo for k, v in _leaves_of(preset_path(stage, c)) if v == "???"]
                cfg = load_config(stage, combo, required)
                out[" ".join([stage, *combo])] = OmegaConf.to_container(cfg, resolve=True)
    return out


def _leaves_of(path: Path) -> list[tuple[str, object]]:
    return list(_flat(OmegaConf.to_container(_load_yaml(path), resolve=False)).items())


def test_resolved_configs_of_every_stage_and_preset_match_the_snapshot(monkeypatch):
    """The files inherit (`_base_`, also per section) but resolve to exactly the configs the snapshot holds.
    After an intended config change, refresh the snapshot with
    CORRTRACK_UPDATE_SNAPSHOT=1 python -m pytest tests/test_config.py -k snapshot"""
    for k in ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    now = _resolved_configs()
    if os.environ.get("CORRTRACK_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    before = json.loads(SNAPSHOT.read_text())
    diffs = []
    for name in sorted(set(before) & set(now)):
        a, b = _flat(before[name]), _flat(now[name])
        diffs += [f"{name}: {k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
                  for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]
    assert not diffs, "resolved configs changed (refresh the snapshot if intended):\n" + "\n".join(diffs[:40])
    assert set(before) <= set(now), f"stage/preset combinations gone: {sorted(set(before) - set(now))}"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_child_configs_state_only_what_differs():
    fine = yaml.safe_load((CONFIG_DIR / "finetune.yaml").read_text())
    assert fine["_base_"] == "pose.yaml" and "net" not in fine["model"] and "augment" not in fine["data"]
    p, f = load_config("pose"), load_config("finetune")
    assert p.model.layout == "coco" and f.model.layout == "posetrack"
    assert f.model.init_ckpt == "latest" and p.model.init_ckpt is None
    assert f.model.net == p.model.net and f.data.augment == p.data.augment
    s, r = load_config("siamese"), load_config("refine")
    assert r.data == s.data and r.optim == s.optim
    assert "variant" in s.model and "variant" not in r.model and "siamese_ckpt" in r.model   # _delete_


def test_base_key_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\nx: 1\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: _base_ cycle"):
        _load_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: _base_ file 'missing.yaml' not found"):
        _load_yaml(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("_base_: [3]\n")
    with pytest.raises(ConfigError, match=r"d\.yaml: _base_ must be a file name"):
        _load_yaml(tmp_path / "d.yaml")
    (tmp_path / "p.yaml").write_text("m: {a: 1, b: 2}\nn: {a: 1}\nl: [1, 2]\n")
    (tmp_path / "q.yaml").write_text("_base_: p.yaml\nm: {_delete_: true, c: 3}\nn: {b: 2}\nl: [3]\n")
    assert OmegaConf.to_container(_load_yaml(tmp_path / "q.yaml")) == \
        {"m": {"c": 3}, "n": {"a": 1, "b": 2}, "l": [3]}


def test_a_section_inherits_a_whole_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "group.yaml").write_text("a: 1\nb: {x: 1, y: 2}\nc: 3\n")
    (tmp_path / "p.yaml").write_text("s: {_base_: sub/group.yaml, _drop_: [c], b: {y: 5}}\nt: 0\n")
    assert OmegaConf.to_container(_load_yaml(tmp_path / "p.yaml")) == {"s": {"a": 1, "b": {"x": 1, "y": 5}}, "t": 0}
    # a child file's section merges over the inherited one as over any section
    (tmp_path / "q.yaml").write_text("_base_: p.yaml\ns: {a: 2}\n")
    assert OmegaConf.to_container(_load_yaml(tmp_path / "q.yaml")) == {"s": {"a": 2, "b": {"x": 1, "y": 5}}, "t": 0}
    for text, words in [("s: {_base_: nope.yaml}", r"r\.yaml: s\._base_ file 'nope\.yaml' not found"),
                        ("s: {_base_: sub/group.yaml, _drop_: [z]}", r"r\.yaml: s\._drop_: 'z' is not a key of"),
                        ("s: {_drop_: [a]}", r"r\.yaml: s\._drop_ needs a _base_"),
                        ("s: {_base_: r.yaml}", r"_base_ cycle: r\.yaml -> r\.yaml")]:
        (tmp_path / "r.yaml").write_text(text + "\n")
        with pytest.raises(ConfigError, match=words):
            _load_yaml(tmp_path / "r.yaml")


# ------------------------------------------------------------------------------------------ value checks

def test_choices_mirror_the_core_definitions():
    import typing

    from corrtrack.nets.correspondence import DESCRIPTOR_SAMPLING, SiameseVariant
    from corrtrack.synth.presets import PRESETS
    from experiments.config import CHOICES

    assert set(CHOICES["data.synth.preset"]) == set(PRESETS)
    assert set(CHOICES["model.variant"]) == set(typing.get_args(SiameseVariant))
    assert set(CHOICES["model.descriptor"]) == set(DESCRIPTOR_SAMPLING)


@pytest.mark.parametrize("override,words", [
    ("trainer.max_steps=abc", "trainer.max_steps: 'abc' is not an integer"),
    ("model.variant=bogus", "model.variant: 'bogus' is not one of: paper, release"),
    ("data.batch_size=0", "data.batch_size: 0 is out of range (must be >= 1)"),
    ("optim.lr=1", None),                    # an int where a float is expected is fine
    ("trainer.devices=auto", None),          # Lightning's wider types
    ("model.variant=???", "give a value for config key model.variant"),
    ("data.augment.scale=[a,1]", "data.augment.scale: element 'a'"),
    ("track_eval.tracking.tau_corr=0.5", None),                      # inherited from tracking.yaml
    ("track_eval.tracking.tau_corr=high", "track_eval.tracking.tau_corr: 'high' is not a number"),
    ("track_eval.tracking.cue=oks", "unknown config key 'track_eval.tracking.cue'"),   # dropped
])
def test_values_are_type_and_range_checked_at_load(override, words):
    if words is None:
        load_config("siamese", [], [override])
        return
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config("siamese", [], [override])


def test_a_preset_of_wrong_type_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epochs: ten\n")
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs: 'ten' is not an integer"):
        load_config("pose", [str(bad)])


def test_a_preset_can_require_a_key(tmp_path):
    """``???`` in a preset makes the key required even where an earlier file gave it a value (a plain
    omegaconf merge would keep the old value): finetune cpu-hires needs the checkpoint it continues."""
    assert load_config("finetune").model.init_ckpt == "latest"
    with pytest.raises(ConfigError, match=r"model\.init_ckpt: a value is required"):
        load_config("finetune", ["cpu-hires"])
    cfg = load_config("finetune", ["cpu-hires"], ["model.init_ckpt=outputs/finetune/first"])
    assert cfg.model.init_ckpt == "outputs/finetune/first" and list(cfg.data.input_size) == [256, 192]
    own = tmp_path / "own.yaml"
    own.write_text("seed: ???\n")
    with pytest.raises(ConfigError, match=r"config key seed: a value is required"):
        load_config("pose", [str(own)])
    assert load_config("pose", [str(own)], ["seed=4"]).seed == 4
    assert main(["finetune", "cpu-hires"]) == 2


def test_pose_decoding_radius_is_a_config_key_passed_to_the_module(tmp_path):
    """model.vote_radius: 6 output cells in the cpu presets (chosen on the hard world's seed-0 val
    frames), the disk radius 2 elsewhere; range-checked; the stage hands it to the module (saved in the
    checkpoint, so inference decodes the way validation did)."""
    from experiments.stages.pose import build

    assert load_config("finetune", ["cpu"]).model.vote_radius == 6.0
    assert load_config("finetune", ["paper"]).model.vote_radius == 2.0
    with pytest.raises(ConfigError, match="model.vote_radius: -1.0 is out of range"):
        load_config("finetune", ["cpu"], ["model.vote_radius=-1.0"])
    cfg = load_config("finetune", ["cpu"], ["model.vote_radius=3.5", f"output_root={tmp_path}"])
    assert build(cfg, tmp_path).module.hparams.vote_radius == 3.5


def test_cpu_presets_track_during_training_at_the_shipped_operating_point():
    """The `cpu` schedules' maps rarely pass the paper's tau_corr 0.3 (docs/tracking.md, "Operating point in
    the `cpu` presets"): their callback uses the shipped preset's tau_corr; other presets keep the paper's."""
    from corrtrack.tracking.config import SHIPPED_OVERRIDES, TrackingConfig

    for stage in ("siamese", "refine"):
        assert load_config(stage, ["cpu"], []).track_eval.tracking.tau_corr == SHIPPED_OVERRIDES["tau_corr"]
        assert load_config(stage, [], []).track_eval.tracking.tau_corr == TrackingConfig().tau_corr == 0.3
