"""Shipped weights: export keeps exactly what the loaders need, the manifest matches, corruption is caught."""
import json

import pytest
import torch

from corrtrack import weights as W


def _fake_run(tmp_path, name="run-a"):
    run = tmp_path / "outputs" / "siamese" / name
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "best-epoch=003-step=40.ckpt"
    torch.save({"hyper_parameters": {"stage": "siamese", "net": {"siamese": {"width": 0.25}}},
                "state_dict": {"siamese.w": torch.arange(6.0)}, "epoch": 3, "global_step": 40,
                "optimizer_states": [{"big": torch.zeros(1000)}], "loops": {"x": 1}}, ckpt)
    (run / "summary.json").write_text(json.dumps({"stage": "siamese", "best_checkpoint": str(ckpt),
                                                  "final_metrics": {"val/corr_pck": 0.47}}))
    return run, ckpt


def test_export_keeps_weights_drops_training_state_and_writes_manifest(tmp_path):
    run, _ = _fake_run(tmp_path)
    out = tmp_path / "weights"
    manifest = W.export({"correspondence": run}, out, command="make weights", commit="abc",
                        extra_metrics={"correspondence": {"bench_occluded": 40.9}})
    slim = torch.load(out / "correspondence.ckpt", weights_only=False)
    assert set(slim) == {"hyper_parameters", "state_dict", "epoch", "global_step"}
    assert torch.equal(slim["state_dict"]["siamese.w"], torch.arange(6.0))
    entry = manifest["files"]["correspondence"]
    assert entry["sha256"] == W.sha256(out / "correspondence.ckpt")
    assert entry["stage"] == "siamese" and entry["source_run"] == "run-a" and entry["global_step"] == 40
    assert entry["metrics"] == {"val/corr_pck": 0.47, "bench_occluded": 40.9}
    assert manifest["command"] == "make weights" and manifest["commit"] == "abc"
    assert W.verify(out)["files"].keys() == {"correspondence"}


def test_verify_catches_changed_and_missing_files(tmp_path):
    run, _ = _fake_run(tmp_path)
    out = tmp_path / "weights"
    W.export({"correspondence": run}, out)
    data = (out / "correspondence.ckpt").read_bytes()
    (out / "correspondence.ckpt").write_bytes(data[:-10] + bytes(10))
    with pytest.raises(W.WeightsError, match="sha256"):
        W.verify(out)
    (out / "correspondence.ckpt").unlink()
    with pytest.raises(W.WeightsError, match="missing"):
        W.verify(out)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert W.main(["verify", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "MANIFEST.json" in err and "Traceback" not in err and err.count("\n") == 1
    assert W.main(["export", "--pose", str(tmp_path / "nope"), "--out", str(tmp_path / "w")]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(W.WeightsError, match="no shipped reid weights"):
        W.shipped("reid", tmp_path)


@pytest.mark.skipif(not (W.WEIGHTS_DIR / W.MANIFEST).is_file(), reason="the project ships no weights yet")
def test_shipped_weights_load_and_match_their_manifest():
    manifest = W.verify()
    assert set(manifest["files"]) == set(W.ROLES)
    assert manifest["command"] and manifest["commit"]
    total = sum((W.WEIGHTS_DIR / e["file"]).stat().st_size for e in manifest["files"].values())
    assert total <= 20 * 2**20
    # each file loads through the loader the tracker uses
    from corrtrack.correspondence import load_correspondence_checkpoint
    from corrtrack.pose import PoseEstimator
    from corrtrack.reid import ReIDEmbedder

    assert PoseEstimator.from_checkpoint(W.shipped("pose")).layout == "posetrack"
    assert load_correspondence_checkpoint(W.shipped("correspondence"), input_size=256).siamese is not None
    emb = ReIDEmbedder.from_checkpoint(W.shipped("reid"))
    import numpy as np

    e = emb.embed(np.zeros((64, 48, 3), np.uint8), np.array([[4.0, 4.0, 30.0, 50.0]]))
    assert e.shape[0] == 1 and abs(float(np.linalg.norm(e[0])) - 1.0) < 1e-4


def test_verify_refuses_a_file_of_another_stage(tmp_path):
    run, _ = _fake_run(tmp_path)
    out = tmp_path / "weights"
    W.export({"reid": run}, out)  # Siamese weights exported under the re-ID role
    with pytest.raises(W.WeightsError, match="'siamese' stage"):
        W.verify(out)


def _weights_sh(env_extra, *args):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "CORRTRACK_OUTPUTS": "outs", **env_extra}
    return subprocess.run(["bash", str(root / "experiments" / "weights.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_weights_recipe_chains_the_pose_cycles_and_exports_the_last():
    """make weights' second pose phase: each `finetune cpu-hires` run continues the previous one, and the
    last one is scored and exported (a dry run prints the commands and runs nothing)."""
    res = _weights_sh({"DRY_RUN": "1", "HIRES_CYCLES": "3"}, "W")
    assert res.returncode == 0, res.stderr
    cmds = [line[2:] for line in res.stderr.splitlines() if line.startswith("+ ")]
    hires = [c for c in cmds if "finetune cpu-hires" in c]
    assert [c.split("model.init_ckpt=")[1] for c in hires] == [
        "outs/finetune/W run_id=W-hires1", "outs/finetune/W-hires1 run_id=W-hires2",
        "outs/finetune/W-hires2 run_id=W-hires3"]
    export = [c for c in cmds if "corrtrack.weights export" in c]
    assert len(export) == 1 and "--pose outs/finetune/W-hires3 " in export[0]
    zero = _weights_sh({"DRY_RUN": "1", "HIRES_CYCLES": "0"}, "W").stderr
    assert "cpu-hires" not in zero and "--pose outs/finetune/W " in zero


def test_weights_recipe_refuses_a_bad_cycle_count():
    res = _weights_sh({"HIRES_CYCLES": "two"}, "W")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["error: HIRES_CYCLES must be a whole number, not 'two'"]


def test_set_changes_an_inference_hparam_keeps_the_weights_and_records_it(tmp_path, capsys):
    run, _ = _fake_run(tmp_path)
    out = tmp_path / "weights"
    W.export({"correspondence": run}, out)
    ck = torch.load(out / "correspondence.ckpt", weights_only=False)
    ck["hyper_parameters"]["vote_radius"] = 2.0
    torch.save(ck, out / "correspondence.ckpt")
    m = json.loads((out / "MANIFEST.json").read_text())
    m["files"]["correspondence"]["sha256"] = W.sha256(out / "correspondence.ckpt")
    (out / "MANIFEST.json").write_text(json.dumps(m))

    assert W.main(["set", "correspondence", "vote_radius=6", "--dir", str(out)]) == 0
    slim = torch.load(out / "correspondence.ckpt", weights_only=False)
    assert slim["hyper_parameters"]["vote_radius"] == 6.0
    assert isinstance(slim["hyper_parameters"]["vote_radius"], float)
    assert torch.equal(slim["state_dict"]["siamese.w"], torch.arange(6.0))
    entry = W.verify(out)["files"]["correspondence"]          # new sha256 recorded
    assert [(r["key"], r["from"], r["to"]) for r in entry["hparams_set"]] == [("vote_radius", 2.0, 6.0)]
    capsys.readouterr()
    # an unknown key, a value of another kind, a role the folder does not ship: one line each, file unchanged
    for argv, words in ((["correspondence", "vote_radiuss=6"], "no hyper-parameter 'vote_radiuss'"),
                        (["correspondence", "vote_radius=wide"], "not of its kind"),
                        (["correspondence", "vote_radius"], "expected KEY=VALUE"),
                        (["correspondence", 'net={"width": 1}'], "'net' is not a number, bool or string"),
                        (["pose", "vote_radius=6"], "no 'pose' weights")):
        assert W.main(["set", *argv, "--dir", str(out)]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert torch.load(out / "correspondence.ckpt", weights_only=False)["hyper_parameters"]["vote_radius"] == 6.0
    W.verify(out)


@pytest.mark.skipif(not (W.WEIGHTS_DIR / W.MANIFEST).is_file(), reason="the project ships no weights yet")
def test_shipped_pose_decodes_as_the_recipe_would():
    """`make weights` trains the pose net with the `finetune cpu` presets, whose model.vote_radius is saved in
    the checkpoint: the shipped file must decode the same way, and say so in its manifest if it was set."""
    from experiments.config import load_config

    hp = torch.load(W.shipped("pose"), map_location="cpu", weights_only=False)["hyper_parameters"]
    for preset in ("cpu", "cpu-hires"):
        extra = ["model.init_ckpt=x"] if preset == "cpu-hires" else []
        assert hp["vote_radius"] == load_config("finetune", [preset], extra).model.vote_radius
    sets = [s for s in W.read_manifest()["files"]["pose"].get("hparams_set", []) if s["key"] == "vote_radius"]
    assert not sets or sets[-1]["to"] == hp["vote_radius"]
