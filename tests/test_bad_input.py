"""Bad input to every command line (training, synthetic world, benchmarks, evaluation): each case must end
with exit status 2, no traceback, and a message that names the file or the config key / option.

The cases are the mistakes users of COCO, PoseTrack and Lightning tools make: wrong types and values on
the command line, typos in keys, truncated or foreign files, checkpoints of the wrong stage, folders that
are not what they should be, unwritable outputs. They call each ``main(argv)`` in this process (fast),
except where a fresh process is the point.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch

from corrtrack.bench.cli import main as bench_main
from corrtrack.evaluate import main as evaluate_main
from corrtrack.synth.__main__ import main as synth_main
from corrtrack.track import main as track_main
from experiments.run import main as run_main

TINY_NETS = ["model.width=0.125", "data.input_size=64", "data.num_workers=0", "cpu_threads=1"]
TINY_POSE = ["model.net.width=0.125", "data.input_size=[64,48]", "data.num_workers=0", "cpu_threads=1"]


def _pose_ckpt(stage: str = "pose") -> dict:
    return {"state_dict": {"net.w": torch.zeros(1)}, "epoch": 0, "global_step": 1,
            "hyper_parameters": {"stage": stage, "net": {"num_joints": 17, "width": 0.125}}}


def _siamese_ckpt() -> dict:
    return {"state_dict": {"siamese.w": torch.zeros(1)}, "epoch": 0, "global_step": 1,
            "hyper_parameters": {"stage": "siamese", "net": {"siamese": {"width": 0.125}, "refinement": None}}}


@pytest.fixture(scope="module")
def ctx(tiny_world, tmp_path_factory) -> dict[str, Path]:
    """Files the cases point at: checkpoints of the wrong stage, truncated files, broken datasets."""
    d = tmp_path_factory.mktemp("bad_input")
    c: dict[str, Path] = {"dir": d, "world": tiny_world, "out": d / "outputs"}
    torch.save(_pose_ckpt(), d / "pose.ckpt")
    torch.save(_siamese_ckpt(), d / "siamese.ckpt")
    good = (d / "pose.ckpt").read_bytes()
    (d / "truncated.ckpt").write_bytes(good[: len(good) // 3])
    (d / "notes.txt").write_text("not a checkpoint\n")
    torch.save({"weights": torch.zeros(2)}, d / "plain.ckpt")
    c.update({k: d / f"{k}.ckpt" for k in ("pose", "siamese", "truncated", "plain")})
    c["text"] = d / "notes.txt"
    # a run folder whose summary.json is broken and that has no checkpoint
    run = d / "brokenrun"
    run.mkdir()
    (run / "summary.json").write_text("{\"best_checkpoint\": ")
    c["brokenrun"] = run
    # a run folder that already exists (run_id reuse)
    (c["out"] / "siamese" / "taken").mkdir(parents=True)
    (c["out"] / "siamese" / "taken" / "config.yaml").write_text("stage: siamese\n")
    # datasets: a truncated COCO annotation file, a string among PoseTrack keypoints
    coco = d / "coco"
    shutil.copytree(tiny_world / "coco", coco)
    ann = coco / "annotations" / "person_keypoints_train2017.json"
    ann.write_text(ann.read_text()[:2000])
    c["coco_truncated"] = coco
    coco_list = d / "coco_list"
    shutil.copytree(tiny_world / "coco", coco_list)
    (coco_list / "annotations" / "person_keypoints_train2017.json").write_text("[1, 2]")
    c["coco_list"] = coco_list
    pt = d / "posetrack"
    shutil.copytree(tiny_world / "posetrack", pt)
    f = sorted((pt / "annotations" / "train").glob("*.json"))[0]
    data = json.loads(f.read_text())
    next(a for a in data["annotations"] if a.get("keypoints"))["keypoints"][7] = "abc"
    f.write_text(json.dumps(data))
    c["posetrack_string"], c["posetrack_string_file"] = pt, f
    c["not_a_world"] = d / "empty_folder"
    c["not_a_world"].mkdir()
    c["a_file"] = d / "a_file"
    c["a_file"].write_text("x")
    # evaluation folders
    from corrtrack.posetrack import save_2018
    gt, pred = d / "gt", d / "pred"
    gt.mkdir()
    pred.mkdir()
    src = sorted((tiny_world / "posetrack" / "annotations" / "val").glob("*.json"))[0]
    shutil.copy(src, gt / src.name)
    (pred / src.name).write_text(src.read_text()[:500])
    c["gt"], c["pred_truncated"] = gt, pred
    del save_2018
    # a world of another preset in a folder (no --force): refused, never replaced
    other = d / "other_world"
    other.mkdir()
    (other / "world.json").write_text(json.dumps({"format": "corrtrack-synth", "version": 1, "preset": "small",
                                                  "seed": 0, "counts": {}}))
    c["other_world"] = other
    # zero-byte checkpoint, a folder where a checkpoint file is expected, config files that are not a mapping
    (d / "empty.ckpt").write_bytes(b"")
    c["empty"] = d / "empty.ckpt"
    c["ckpt_dir"] = d / "ckpt_folder"
    c["ckpt_dir"].mkdir()
    (d / "latin1.yaml").write_bytes("trainer:\n  max_steps: 3 # \u00e9t\u00e9\n".encode("latin-1"))
    (d / "list.yaml").write_text("- trainer.max_steps=3\n- seed=1\n")
    c["latin1_yaml"], c["list_yaml"] = d / "latin1.yaml", d / "list.yaml"
    # a finished-looking siamese run folder (resume= from another stage)
    srun = c["out"] / "siamese" / "done"
    (srun / "checkpoints").mkdir(parents=True)
    (srun / "config.yaml").write_text("stage: siamese\n")
    torch.save(_siamese_ckpt(), srun / "checkpoints" / "last.ckpt")
    c["siamese_run"] = srun
    # PoseTrack: a video whose annotation file has no labels at all
    nolab = d / "posetrack_nolabels"
    shutil.copytree(tiny_world / "posetrack", nolab)
    v = sorted((nolab / "annotations" / "val").glob("*.json"))[0]
    data = json.loads(v.read_text())
    data.pop("annotations", None)
    v.write_text(json.dumps(data))
    c["posetrack_nolabels"], c["posetrack_nolabels_file"] = nolab, v
    return c


def _world(c) -> list[str]:
    return [f"data.synth.root={c['world'].parent}", "data.synth.preset=tiny", "data.coco_root=synth",
            "data.posetrack_root=synth", f"output_root={c['out']}"]


Case = tuple[str, Callable, Callable[[dict], list[str]], Callable[[dict], list[str]]]
RUN, SYNTH, BENCH, EVAL, TRACK = run_main, synth_main, bench_main, evaluate_main, track_main

CASES: list[Case] = [
    # -- experiments.run: config values ---------------------------------------------------------------
    ("max_steps_not_int", RUN, lambda c: ["siamese", "trainer.max_steps=abc"], lambda c: ["trainer.max_steps"]),
    ("seed_not_int", RUN, lambda c: ["siamese", "seed=abc"], lambda c: ["seed"]),
    ("seed_negative", RUN, lambda c: ["pose", "seed=-1"], lambda c: ["seed"]),
    ("variant_bogus", RUN, lambda c: ["siamese", "model.variant=bogus"], lambda c: ["model.variant", "paper"]),
    ("world_preset_huge", RUN, lambda c: ["siamese", "data.synth.preset=huge"],
     lambda c: ["data.synth.preset", "tiny"]),
    ("batch_size_zero", RUN, lambda c: ["siamese", "data.batch_size=0"], lambda c: ["data.batch_size"]),
    ("batch_size_null", RUN, lambda c: ["pose", "data.batch_size=null"], lambda c: ["data.batch_size"]),
    ("missing_value", RUN, lambda c: ["siamese", "model.width=???"], lambda c: ["model.width"]),
    ("key_typo", RUN, lambda c: ["siamese", "trainer.max_step=3"], lambda c: ["trainer.max_step", "max_steps"]),
    ("unknown_stage", RUN, lambda c: ["siamesee"], lambda c: ["siamesee"]),
    ("unknown_preset", RUN, lambda c: ["siamese", "cpuu"], lambda c: ["cpuu"]),
    ("precision_bogus", RUN, lambda c: ["siamese", "trainer.precision=17"], lambda c: ["trainer.precision"]),
    ("devices_zero", RUN, lambda c: ["siamese", "trainer.devices=0"], lambda c: ["trainer.devices"]),
    ("strategy_typo", RUN, lambda c: ["siamese", "trainer.strategy=ddpp"], lambda c: ["trainer.strategy", "ddp"]),
    ("accelerator_typo", RUN, lambda c: ["pose", "trainer.accelerator=gpuu"], lambda c: ["trainer.accelerator"]),
    ("max_time_format", RUN, lambda c: ["siamese", "trainer.max_time=5min"], lambda c: ["trainer.max_time"]),
    ("probability_above_one", RUN, lambda c: ["siamese", "data.augment.flip_prob=1.5"],
     lambda c: ["data.augment.flip_prob"]),
    ("lr_negative", RUN, lambda c: ["refine", "optim.lr=-1e-3"], lambda c: ["optim.lr"]),
    ("workers_negative", RUN, lambda c: ["pose", "data.num_workers=-2"], lambda c: ["data.num_workers"]),
    ("list_element_type", RUN, lambda c: ["pose", "data.input_size=[a,48]"], lambda c: ["data.input_size"]),
    ("target_kind_bogus", RUN, lambda c: ["finetune", "model.target.kind=box"], lambda c: ["model.target.kind"]),
    ("limit_batches_share_above_one", RUN, lambda c: ["siamese", "trainer.limit_train_batches=1.5"],
     lambda c: ["trainer.limit_train_batches"]),
    ("run_id_with_slash", RUN, lambda c: ["siamese", "run_id=a/b"], lambda c: ["run_id", "a/b"]),
    ("run_id_latest", RUN, lambda c: ["siamese", "run_id=latest"], lambda c: ["run_id", "latest"]),
    ("bool_as_steps", RUN, lambda c: ["siamese", "trainer.max_steps=true"], lambda c: ["trainer.max_steps"]),
    ("broken_yaml_preset", RUN, lambda c: ["siamese", str(c["text"].with_suffix(".yaml"))],
     lambda c: [str(c["text"].with_suffix(".yaml"))]),
    # -- experiments.run: folders and checkpoints ------------------------------------------------------
    ("run_id_taken", RUN, lambda c: ["siamese", "debug", *_world(c), "run_id=taken"], lambda c: ["run_id", "taken"]),
    ("output_root_unwritable", RUN, lambda c: ["siamese", "debug", *_world(c), "output_root=/proc/corrtrack"],
     lambda c: ["output_root"]),
    ("pose_ckpt_as_siamese", RUN, lambda c: ["refine", "debug", *_world(c), f"model.siamese_ckpt={c['pose']}"],
     lambda c: ["model.siamese_ckpt", "pose"]),
    ("siamese_ckpt_as_init", RUN, lambda c: ["finetune", "debug", *_world(c), f"model.init_ckpt={c['siamese']}"],
     lambda c: ["model.init_ckpt", "siamese"]),
    ("siamese_ckpt_as_resume", RUN, lambda c: ["pose", "debug", *_world(c), f"resume={c['siamese']}"],
     lambda c: ["resume", "siamese"]),
    ("truncated_ckpt_resume", RUN, lambda c: ["pose", "debug", *_world(c), f"resume={c['truncated']}"],
     lambda c: ["resume", str(c["truncated"])]),
    ("text_file_as_ckpt", RUN, lambda c: ["refine", "debug", *_world(c), f"model.siamese_ckpt={c['text']}"],
     lambda c: ["model.siamese_ckpt", str(c["text"])]),
    ("plain_torch_file", RUN, lambda c: ["finetune", "debug", *_world(c), f"model.init_ckpt={c['plain']}"],
     lambda c: ["model.init_ckpt", "not a Lightning checkpoint"]),
    ("resume_missing", RUN, lambda c: ["siamese", "debug", *_world(c), "resume=/nonexistent/last.ckpt"],
     lambda c: ["resume", "/nonexistent/last.ckpt"]),
    ("no_siamese_run_yet", RUN, lambda c: ["refine", "debug", *_world(c), "model.siamese_ckpt=latest",
                                           f"output_root={c['dir'] / 'fresh'}"], lambda c: ["model.siamese_ckpt"]),
    ("broken_summary_run", RUN, lambda c: ["refine", "debug", *_world(c), f"model.siamese_ckpt={c['brokenrun']}"],
     lambda c: ["model.siamese_ckpt", "summary.json"]),
    # -- experiments.run: datasets ---------------------------------------------------------------------
    ("coco_root_missing", RUN, lambda c: ["pose", "debug", *_world(c), *TINY_POSE, "data.coco_root=/nonexistent/coco"],
     lambda c: ["/nonexistent/coco"]),
    ("coco_truncated", RUN, lambda c: ["pose", "debug", *_world(c), *TINY_POSE, f"data.coco_root={c['coco_truncated']}"],
     lambda c: ["person_keypoints_train2017.json"]),
    ("coco_annotations_a_list", RUN, lambda c: ["pose", "debug", *_world(c), *TINY_POSE,
                                                f"data.coco_root={c['coco_list']}"],
     lambda c: ["person_keypoints_train2017.json"]),
    ("posetrack_string_keypoint", RUN, lambda c: ["finetune", "debug", *_world(c), *TINY_POSE, "model.init_ckpt=null",
                                                  f"data.posetrack_root={c['posetrack_string']}"],
     lambda c: [c["posetrack_string_file"].name, "keypoints"]),
    ("det_file_missing", RUN, lambda c: ["pose", "debug", *_world(c), *TINY_POSE, "data.det_file=/nonexistent/dets.json"],
     lambda c: ["/nonexistent/dets.json"]),
    ("empty_ckpt_resume", RUN, lambda c: ["pose", "debug", *_world(c), f"resume={c['empty']}"],
     lambda c: ["resume", str(c["empty"])]),
    ("empty_ckpt_siamese", RUN, lambda c: ["refine", "debug", *_world(c), f"model.siamese_ckpt={c['empty']}"],
     lambda c: ["model.siamese_ckpt", str(c["empty"])]),
    ("folder_as_siamese_ckpt", RUN, lambda c: ["refine", "debug", *_world(c), f"model.siamese_ckpt={c['ckpt_dir']}"],
     lambda c: ["model.siamese_ckpt", str(c["ckpt_dir"])]),
    ("folder_as_resume", RUN, lambda c: ["siamese", "debug", *_world(c), f"resume={c['ckpt_dir']}"],
     lambda c: ["resume", str(c["ckpt_dir"])]),
    ("resume_other_stage_run", RUN, lambda c: ["refine", "debug", *_world(c), f"resume={c['siamese_run']}"],
     lambda c: ["resume", "siamese", str(c["siamese_run"])]),
    ("resume_other_stage_ckpt", RUN, lambda c: ["pose", "debug", *_world(c),
                                                f"resume={c['siamese_run'] / 'checkpoints' / 'last.ckpt'}"],
     lambda c: ["resume", "siamese"]),
    ("non_utf8_yaml_preset", RUN, lambda c: ["siamese", str(c["latin1_yaml"])], lambda c: [str(c["latin1_yaml"])]),
    ("yaml_list_preset", RUN, lambda c: ["siamese", str(c["list_yaml"])], lambda c: [str(c["list_yaml"])]),
    # -- corrtrack.synth -------------------------------------------------------------------------------
    ("synth_seed_negative", SYNTH, lambda c: ["--out", str(c["dir"] / "w"), "--seed", "-1"], lambda c: ["--seed"]),
    ("synth_out_unwritable", SYNTH, lambda c: ["--out", "/proc/corrtrack-world", "--preset", "tiny", "--quiet"],
     lambda c: ["--out", "/proc/corrtrack-world"]),
    ("synth_out_is_a_file", SYNTH, lambda c: ["--out", str(c["a_file"]), "--preset", "tiny", "--quiet"],
     lambda c: [str(c["a_file"])]),
    ("synth_preview_not_a_world", SYNTH, lambda c: ["--preview-only", str(c["not_a_world"])],
     lambda c: [str(c["not_a_world"])]),
    ("synth_preset_unknown", SYNTH, lambda c: ["--out", str(c["dir"] / "w"), "--preset", "huge"], lambda c: ["--preset"]),
    ("synth_workers_zero", SYNTH, lambda c: ["--out", str(c["dir"] / "w"), "--workers", "0"], lambda c: ["--workers"]),
    ("synth_other_world", SYNTH, lambda c: ["--out", str(c["other_world"]), "--preset", "tiny", "--quiet"],
     lambda c: [str(c["other_world"])]),
    # -- corrtrack.bench -------------------------------------------------------------------------------
    ("bench_data_not_a_world", BENCH, lambda c: ["propagation", "--data", str(c["not_a_world"]), "--device", "cpu"],
     lambda c: [str(c["not_a_world"])]),
    ("bench_data_missing", BENCH, lambda c: ["propagation", "--data", "/nonexistent/world", "--device", "cpu"],
     lambda c: ["--data", "/nonexistent/world"]),
    ("bench_ckpt_missing", BENCH, lambda c: ["propagation", "--data", str(c["world"]), "--ckpt", "/nonexistent.ckpt",
                                             "--device", "cpu"], lambda c: ["--ckpt", "/nonexistent.ckpt"]),
    ("bench_ckpt_truncated", BENCH, lambda c: ["propagation", "--data", str(c["world"]), "--ckpt", str(c["truncated"]),
                                               "--device", "cpu"], lambda c: ["--ckpt", str(c["truncated"])]),
    ("bench_ckpt_wrong_stage", BENCH, lambda c: ["propagation", "--data", str(c["world"]), "--ckpt", str(c["pose"]),
                                                 "--device", "cpu"], lambda c: ["--ckpt", "pose"]),
    ("bench_input_size", BENCH, lambda c: ["propagation", "--data", str(c["world"]), "--input-size", "100"],
     lambda c: ["--input-size"]),
    ("bench_steps_zero", BENCH, lambda c: ["speed", "--steps", "0"], lambda c: ["--steps"]),
    # -- corrtrack.evaluate ----------------------------------------------------------------------------
    ("eval_gt_missing", EVAL, lambda c: ["--gt", "/nonexistent/gt", "--pred", str(c["gt"])],
     lambda c: ["/nonexistent/gt"]),
    ("eval_pred_truncated", EVAL, lambda c: ["--gt", str(c["gt"]), "--pred", str(c["pred_truncated"])],
     lambda c: [next(c["pred_truncated"].glob("*.json")).name]),
    ("eval_no_gt_option", EVAL, lambda c: ["--pred", str(c["gt"])], lambda c: ["--gt"]),
    ("eval_pred_is_a_file", EVAL, lambda c: ["--gt", str(c["gt"]), "--pred", str(c["a_file"])],
     lambda c: [str(c["a_file"])]),
    # -- corrtrack.track -------------------------------------------------------------------------------
    ("track_no_root_option", TRACK, lambda c: ["--out", str(c["dir"] / "t"), "--cue", "oks"],
     lambda c: ["--posetrack-root"]),
    ("track_root_missing", TRACK, lambda c: ["--posetrack-root", "/nonexistent/pt", "--out", str(c["dir"] / "t"),
                                             "--cue", "oks", "--quiet"], lambda c: ["/nonexistent/pt"]),
    ("track_video_without_labels", TRACK, lambda c: ["--posetrack-root", str(c["posetrack_nolabels"]), "--out",
                                                     str(c["dir"] / "t"), "--cue", "oks", "--boxes", "gt",
                                                     "--quiet", "--device", "cpu"],
     lambda c: [c["posetrack_nolabels_file"].name]),
    ("track_corr_ckpt_wrong_stage", TRACK, lambda c: ["--posetrack-root", str(c["world"] / "posetrack"), "--out",
                                                      str(c["dir"] / "t"), "--cue", "corr", "--corr-ckpt",
                                                      str(c["pose"]), "--quiet", "--device", "cpu"],
     lambda c: ["--corr-ckpt", "pose"]),
    ("track_corr_ckpt_empty", TRACK, lambda c: ["--posetrack-root", str(c["world"] / "posetrack"), "--out",
                                                str(c["dir"] / "t"), "--cue", "corr", "--corr-ckpt", str(c["empty"]),
                                                "--quiet", "--device", "cpu"], lambda c: [str(c["empty"])]),
    ("track_override_unknown", TRACK, lambda c: ["--posetrack-root", str(c["world"] / "posetrack"), "--out",
                                                 str(c["dir"] / "t"), "--cue", "oks", "tau_corrr=0.3"],
     lambda c: ["tau_corrr"]),
    ("eval_out_unwritable", EVAL, lambda c: ["--gt", str(c["gt"]), "--pred", str(c["gt"]), "--out",
                                             "/proc/corrtrack/m.json", "--quiet"], lambda c: ["/proc/corrtrack/m.json"]),
]


def test_the_corpus_is_large_and_covers_every_command_line():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1] for c in CASES} == {RUN, SYNTH, BENCH, EVAL, TRACK}


@pytest.mark.parametrize("name,main,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_it(name, main, argv, words, ctx, capsys, monkeypatch):
    monkeypatch.delenv("CORRTRACK_DEBUG", raising=False)
    if name == "broken_yaml_preset":
        ctx["text"].with_suffix(".yaml").write_text("trainer: [unclosed\n")
    try:
        code = main(argv(ctx))
    except SystemExit as e:               # argparse: usage line and one error line, exit status 2
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, f"exit status {code}\n{err[-2000:]}"
    assert "Traceback" not in out + err
    message = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert message, err[-2000:]
    for w in words(ctx):
        assert w in message[-1], f"{w!r} not in the error line {message[-1]!r}"


def test_debug_shows_the_traceback(ctx, monkeypatch):
    monkeypatch.setenv("CORRTRACK_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        bench_main(["propagation", "--data", str(ctx["not_a_world"]), "--device", "cpu"])
    monkeypatch.delenv("CORRTRACK_DEBUG")
    with pytest.raises(Exception, match="model.variant"):
        run_main(["siamese", "model.variant=bogus", "--debug"])


def test_no_run_folder_is_left_by_a_run_that_failed_before_training(ctx):
    out = ctx["dir"] / "failed_start"
    assert run_main(["refine", "debug", *_world(ctx), f"output_root={out}", f"model.siamese_ckpt={ctx['pose']}"]) == 2
    assert not (out / "refine").exists() or not any((out / "refine").iterdir())
