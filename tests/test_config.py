import pytest

from experiments.config import ConfigError, available_stages, load_config
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
