"""corrtrack.checkpoints: resolving specs, reading files with one-line errors, stages, nets from hparams."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from corrtrack import checkpoints as C
from corrtrack.nets.correspondence import RefinementNet, SiameseNet
from corrtrack.nets.pose import PoseNet

TINY_POSE = {"num_joints": 17, "width": 0.125, "trunk_stride": 16, "upsample": 1, "head_channels": 16}


def _corr_ckpt(refine: bool, stage: str | None = None) -> dict:
    sia = SiameseNet("release", width=0.125)
    ref = RefinementNet(width=0.125, variant="dilated") if refine else None
    state = {f"siamese.{k}": v for k, v in sia.state_dict().items()}
    if ref is not None:
        state.update({f"refinement.{k}": v for k, v in ref.state_dict().items()})
    hp = {"net": {"siamese": sia.config(), "refinement": ref.config() if ref else None}, "input_size": 64}
    if stage:
        hp["stage"] = stage
    return {"state_dict": state, "epoch": 2, "global_step": 5, "hyper_parameters": hp}


def _pose_ckpt(stage: str | None = None) -> dict:
    net = PoseNet(**TINY_POSE)
    hp = {"net": dict(TINY_POSE), "layout": "coco", "input_size": [64, 48]}
    if stage:
        hp["stage"] = stage
    return {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "epoch": 0, "global_step": 3,
            "hyper_parameters": hp}


def _run(root: Path, stage: str, run_id: str, files: dict[str, dict], summary: dict | None = None) -> Path:
    run = root / stage / run_id
    (run / "checkpoints").mkdir(parents=True)
    for name, ck in files.items():
        torch.save(ck, run / "checkpoints" / name)
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    link = root / stage / "latest"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(run_id)
    return run


# ------------------------------------------------------------------------------------------ resolving

def test_latest_missing_and_file_missing_are_not_found_errors(tmp_path):
    with pytest.raises(C.CheckpointNotFoundError, match=r"model\.siamese_ckpt: no 'siamese' run found"):
        C.resolve("latest", tmp_path, "siamese", what="model.siamese_ckpt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*x.ckpt"):
        C.resolve(str(tmp_path / "x.ckpt"))
    with pytest.raises(C.CheckpointError, match="needs an output root"):
        C.resolve("latest")


def test_latest_and_run_folder_prefer_best_then_last(tmp_path):
    run = _run(tmp_path, "siamese", "r1", {"last.ckpt": _corr_ckpt(False)})
    assert C.resolve("latest", tmp_path, "siamese") == (run / "checkpoints" / "last.ckpt").resolve()
    assert C.resolve(None, tmp_path, "siamese") == C.resolve("", tmp_path, "siamese")
    best = run / "checkpoints" / "best-epoch=001-step=4.ckpt"
    torch.save(_corr_ckpt(False), best)
    (run / "summary.json").write_text(json.dumps({"best_checkpoint": str(best),
                                                  "last_checkpoint": str(run / "checkpoints" / "last.ckpt")}))
    assert C.resolve(run) == best
    assert C.resolve("latest", tmp_path, "siamese") == best.resolve()


def test_moved_run_folder_finds_its_checkpoints_by_name(tmp_path):
    run = _run(tmp_path, "siamese", "r1", {"best.ckpt": _corr_ckpt(False), "last.ckpt": _corr_ckpt(False)},
               summary={"best_checkpoint": "/elsewhere/checkpoints/best.ckpt"})
    assert C.resolve(run) == run / "checkpoints" / "best.ckpt"


def test_copied_run_folder_uses_its_own_files(tmp_path):
    orig = _run(tmp_path / "a", "siamese", "r1", {"best.ckpt": _corr_ckpt(False)})
    copy = _run(tmp_path / "b", "siamese", "r1", {"best.ckpt": _corr_ckpt(False)},
                summary={"best_checkpoint": str(orig / "checkpoints" / "best.ckpt")})
    assert C.resolve(copy) == copy / "checkpoints" / "best.ckpt"


def test_run_folder_without_checkpoint_and_bad_summary(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    with pytest.raises(C.CheckpointNotFoundError, match="has no checkpoint"):
        C.resolve(run)
    (run / "summary.json").write_text("{trunc")
    with pytest.raises(C.CheckpointError, match=r"summary\.json: not valid JSON"):
        C.resolve(run, what="resume")


# ------------------------------------------------------------------------------------------ reading

def test_truncated_corrupt_and_foreign_files_are_one_line_errors(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save(_corr_ckpt(True), good)
    data = good.read_bytes()
    cases = {"truncated.ckpt": data[: len(data) // 2], "empty.ckpt": b"", "text.ckpt": b"not a checkpoint\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(C.CheckpointError, match=r"model\.init_ckpt: .*" + name + ".*truncated or corrupt") as e:
            C.read(tmp_path / name, what="model.init_ckpt")
        assert "\n" not in str(e.value)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.ckpt")
    with pytest.raises(C.CheckpointError, match="plain.ckpt: not a Lightning checkpoint"):
        C.read(tmp_path / "plain.ckpt")
    with pytest.raises(FileNotFoundError):
        C.read(tmp_path / "missing.ckpt")


# ------------------------------------------------------------------------------------------ stages

@pytest.mark.parametrize("ckpt,stage", [
    (_corr_ckpt(False), "siamese"), (_corr_ckpt(True), "refine"), (_pose_ckpt(), "pose"),
    (_pose_ckpt("finetune"), "finetune"), (_corr_ckpt(True, "siamese"), "siamese"),
    ({"state_dict": {"net.w": torch.zeros(1)}, "hyper_parameters": {"net": {"reid": {"dim": 8}}}}, "reid"),
    ({"state_dict": {"model.w": torch.zeros(1)}, "hyper_parameters": {"stage": "reid"}}, "reid"),
    ({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": {}}, None),
])
def test_stage_of_reads_the_key_else_the_nets(ckpt, stage):
    assert C.stage_of(ckpt) == stage


def test_wrong_stage_is_refused_with_one_line(tmp_path):
    torch.save(_pose_ckpt("pose"), tmp_path / "pose.ckpt")
    torch.save(_corr_ckpt(False, "siamese"), tmp_path / "sia.ckpt")
    with pytest.raises(C.CheckpointError, match=r"model\.siamese_ckpt: .*pose\.ckpt is a 'pose' checkpoint; "
                                               r"a 'siamese' or 'refine' checkpoint is needed"):
        C.load(tmp_path / "pose.ckpt", accept=("siamese", "refine"), what="model.siamese_ckpt")
    with pytest.raises(C.CheckpointError, match="sia.ckpt is a 'siamese' checkpoint; a 'pose' or 'finetune'"):
        C.load(tmp_path / "sia.ckpt", accept=("pose", "finetune"))
    # an old checkpoint without the key is judged by its family: an old fine-tuning one reads as pose
    torch.save(_pose_ckpt(), tmp_path / "old.ckpt")
    assert C.load(tmp_path / "old.ckpt", accept=("finetune",)).stage == "pose"
    # but an explicit stage must match exactly (resume of a pose run as finetune)
    with pytest.raises(C.CheckpointError, match="'pose' checkpoint; a 'finetune' checkpoint"):
        C.load(tmp_path / "pose.ckpt", accept=("finetune",))
    torch.save({"state_dict": {}, "hyper_parameters": {}}, tmp_path / "anon.ckpt")
    with pytest.raises(C.CheckpointError, match="not a checkpoint of a corrtrack training stage"):
        C.load(tmp_path / "anon.ckpt", accept=("siamese",))


# ------------------------------------------------------------------------------------------ networks

def test_correspondence_and_pose_nets_round_trip(tmp_path):
    raw = _corr_ckpt(True, "refine")
    torch.save(raw, tmp_path / "r.ckpt")
    ck = C.load(tmp_path / "r.ckpt")
    assert (ck.stage, ck.epoch, ck.global_step) == ("refine", 2, 5)
    sia, ref = C.correspondence_nets(ck)
    assert ref is not None and ref.variant == "dilated"
    for k, v in sia.state_dict().items():
        assert torch.equal(v, raw["state_dict"][f"siamese.{k}"])
    torch.save(_corr_ckpt(False), tmp_path / "s.ckpt")
    assert C.correspondence_nets(C.load(tmp_path / "s.ckpt"))[1] is None

    praw = _pose_ckpt("pose")
    torch.save(praw, tmp_path / "p.ckpt")
    net = C.pose_net(C.load(tmp_path / "p.ckpt"))
    for k, v in net.state_dict().items():
        assert torch.equal(v, praw["state_dict"][f"net.{k}"])
    with pytest.raises(C.CheckpointError, match="not a pose checkpoint"):
        C.pose_net(ck)
    with pytest.raises(C.CheckpointError, match="no 'net' entry"):
        C.correspondence_nets(C.load(tmp_path / "p.ckpt"))


def test_weights_that_do_not_fit_the_hparams(tmp_path):
    raw = _pose_ckpt("pose")
    raw["hyper_parameters"]["net"]["head_channels"] = 32       # the weights were made with 16
    torch.save(raw, tmp_path / "p.ckpt")
    with pytest.raises(C.CheckpointError, match="'net.' weights do not fit"):
        C.pose_net(C.load(tmp_path / "p.ckpt"))
    raw = _pose_ckpt("pose")
    raw["state_dict"] = {}
    torch.save(raw, tmp_path / "p.ckpt")
    with pytest.raises(C.CheckpointError, match="no 'net.' weights"):
        C.pose_net(C.load(tmp_path / "p.ckpt"))


def test_every_lightning_module_saves_its_stage():
    from lightning_modules.pose import PoseEstimatorModule
    from lightning_modules.refine import RefinementModule
    from lightning_modules.siamese import SiameseModule

    tiny = {"siamese": {"variant": "release", "width": 0.125}, "refinement": {"width": 0.125}}
    assert SiameseModule(net={"siamese": tiny["siamese"]}, input_size=64).hparams["stage"] == "siamese"
    assert RefinementModule(net=tiny, input_size=64).hparams["stage"] == "refine"
    assert PoseEstimatorModule(net=TINY_POSE, stage="finetune").hparams["stage"] == "finetune"


@pytest.mark.parametrize("stage,key,ckpt,words", [
    ("refine", "model.siamese_ckpt", "pose", "is a 'pose' checkpoint; a 'siamese' or 'refine'"),
    ("finetune", "model.init_ckpt", "siamese", "is a 'siamese' checkpoint; a 'pose' or 'finetune'"),
    ("siamese", "resume", "pose", "is a 'pose' checkpoint; a 'siamese' checkpoint"),
])
def test_training_entry_point_refuses_a_wrong_stage_checkpoint(stage, key, ckpt, words, tmp_path, capsys):
    from experiments.run import main

    path = tmp_path / f"{ckpt}.ckpt"
    torch.save(_pose_ckpt("pose") if ckpt == "pose" else _corr_ckpt(False, "siamese"), path)
    rc = main([stage, "debug", f"output_root={tmp_path / 'out'}", f"{key}={path}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{key}: {path} {words}" in err and "Traceback" not in err
