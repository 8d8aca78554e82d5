"""Tracking end to end on the tiny synthetic world with tiny untrained nets saved as checkpoints: the
command line, the forward counts of the correspondence net, candidates computed once for all cues, and
one clear line for bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corrtrack.evaluation import evaluate
from corrtrack.posetrack import load_sequence
from corrtrack.tracking import Models, TrackingConfig, load_videos, precompute_video, track, track_videos
from corrtrack.tracking.models import load_corr, load_pose
from tests.tracking_helpers import save_tiny_checkpoints

REPO = Path(__file__).resolve().parents[1]
SMALL = ["input_size=128"]
UNTRAINED = ["joint_threshold=0", "match_joint_threshold=0"]      # untrained nets score every joint ~0.02


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny pose and correspondence nets saved in the checkpoint layout the training stages
    write (hyper_parameters["net"] + prefixed state_dict)."""
    return save_tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def models(ckpts) -> Models:
    return Models(pose=load_pose(ckpts["pose"]), corr=load_corr(ckpts["corr"], input_size=128))


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The command line in a subprocess, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "corrtrack.track", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


def _main(capsys, *args: str) -> subprocess.CompletedProcess:
    """The command line's main() in this process (no interpreter start-up per call)."""
    from corrtrack.track import main

    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), rc, out.out, out.err)


def test_cli_all_cues_writes_evaluates_and_renders(tiny_world, ckpts, tmp_path):
    root = tiny_world / "posetrack"
    out = tmp_path / "out"
    r = _cli("--posetrack-root", str(root), "--out", str(out), "--cue", "all", "--max-videos", "1",
             "--pose-ckpt", str(ckpts["pose"]), "--corr-ckpt", str(ckpts["corr"]), "--render", "--quiet",
             *SMALL, *UNTRAINED)
    assert r.returncode == 0, r.stderr
    shipped_reid = (REPO / "weights" / "reid.ckpt").is_file()          # --cue all uses it when it ships
    cues = ["oks", "flow", "reid", "corr"] if shipped_reid else ["oks", "flow", "corr"]
    assert shipped_reid or "note: the reid cue is skipped" in r.stderr
    assert "Tracking method" in r.stdout and "Correspondences" in r.stdout and "HOTA" in r.stdout
    table = json.loads((out / "results" / "table.json").read_text())
    assert table["cues"] == cues and set(table["table"]) == set(cues)
    gt_file = sorted((root / "annotations" / "val").glob("*.json"))[0]
    gt = load_sequence(str(gt_file))
    for cue in cues:
        pred = load_sequence(str(out / cue / gt_file.name))
        assert len(pred.frames) == len(gt.frames)
        assert pred.num_persons > 0
        m = evaluate({gt.name: gt}, {gt.name: pred})                  # the evaluator takes the file as it is
        assert m.total("mota") == pytest.approx(table["table"][cue]["mota"], nan_ok=True)
        assert (out / "render" / f"{gt.name}_{cue}.mp4").stat().st_size > 1000


def test_cli_gt_poses_single_cue(tiny_world, tmp_path, capsys):
    """GT poses without ids and the oks cue need no network: tracking the GT itself scores mAP 100 and a
    high MOTA (association errors only)."""
    out = tmp_path / "out"
    r = _main(capsys, "--posetrack-root", str(tiny_world / "posetrack"), "--out", str(out), "--cue", "oks", "--boxes",
             "gt-poses", "--quiet")
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == sorted(p.name for p in (tiny_world / "posetrack" / "annotations" / "val").glob("*.json"))
    row = json.loads((out / "results" / "table.json").read_text())["table"]["oks"]
    assert row["map"] == pytest.approx(100.0) and row["mota"] > 75.0


def test_cli_max_frames_cuts_every_video(tiny_world, tmp_path, capsys):
    """--max-frames with PoseTrack-format videos: each prediction holds the first N frames, evaluated
    against the same frames of the GT (the GT poses track themselves: mAP 100)."""
    out = tmp_path / "out"
    r = _main(capsys, "--posetrack-root", str(tiny_world / "posetrack"), "--out", str(out), "--cue", "oks", "--boxes",
              "gt-poses", "--max-frames", "5", "--max-videos", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    pred = json.loads(next(out.glob("*.json")).read_text())
    assert len(pred["images"]) == 5
    assert json.loads((out / "results" / "table.json").read_text())["table"]["oks"]["map"] == pytest.approx(100.0)


def test_correspondence_forwards_once_per_frame_and_per_pair(tiny_world, models):
    """Each processed frame passes the correspondence trunk once; each frame pair costs one refinement
    forward holding all candidates of the earlier frame (recovery and association share it)."""
    video = load_videos(tiny_world / "posetrack", "val", max_videos=1)[0]
    calls = {"trunk": 0, "refinement": [], "pose": 0}
    h1 = models.corr.siamese.register_forward_hook(lambda m, i, o: calls.__setitem__("trunk", calls["trunk"] + 1))
    h2 = models.corr.refinement.register_forward_hook(lambda m, i, o: calls["refinement"].append(i[2].shape[1]))
    try:
        cfg = TrackingConfig.from_overrides(SMALL)
        cache = precompute_video(video, cfg, models, cues=["oks", "flow", "corr"])
    finally:
        h1.remove()
        h2.remove()
    n = len(cache.frames)
    assert n == len(video.labeled()) and n > 5
    assert calls["trunk"] == n
    pairs = [(a, b) for a, b in zip(cache.frames[:-1], cache.frames[1:]) if len(cache.candidates[a])]
    assert len(calls["refinement"]) == len(pairs)
    assert calls["refinement"] == [len(cache.candidates[a]) for a, _ in pairs]   # all persons in one forward
    assert dict(cache.forwards) == {"trunk": n, "pair": len(pairs)}
    assert set(cache.pairs) == set(zip(cache.frames[:-1], cache.frames[1:]))


def test_all_cues_share_one_precomputation(tiny_world, models):
    """track_videos computes the candidates once per video and tracks every cue on them; re-tracking with
    another setting needs no network; a cache without the corr part is completed with base=."""
    videos = load_videos(tiny_world / "posetrack", "val", max_videos=1)
    counter = {"n": 0}
    estimate = models.pose.estimate

    def counting(frames, boxes):
        counter["n"] += 1
        return estimate(frames, boxes)

    models.pose.estimate = counting
    try:
        cfg = TrackingConfig.from_overrides(SMALL)
        [(video, cache, results)] = list(track_videos(videos, cfg, models, ["oks", "flow", "corr"], progress=False))
        n_est = counter["n"]
        assert set(results) == {"oks", "flow", "corr"}
        assert all(r.cache is cache for r in results.values())
        assert len(cache.frames) <= n_est <= 2 * len(cache.frames)   # per frame: boxes, and recovery boxes
        again = track(cache, cfg.replace(tau_corr=0.5, solver="hungarian"), "corr")
        assert counter["n"] == n_est and set(again.ids) == set(cache.frames)
        # candidates cached without correspondences, corr added later (a training callback's pattern)
        base = precompute_video(video, cfg.replace(recovery=False), models, cues=["oks"])
        assert "corr" not in base.parts and not base.pairs
        n_est = counter["n"]
        full = precompute_video(video, cfg.replace(recovery=False), models, cues=["corr"], base=base)
        assert counter["n"] == n_est and "corr" in full.parts
        assert all(full.candidates[f] is base.candidates[f] for f in base.frames)
        assert track(full, cfg, "corr").ids.keys() == base.candidates.keys()
    finally:
        models.pose.estimate = estimate


def _copy_world(tiny_world: Path, dst: Path) -> Path:
    root = dst / "posetrack"
    shutil.copytree(tiny_world / "posetrack" / "annotations", root / "annotations")
    shutil.copytree(tiny_world / "posetrack" / "images", root / "images")
    return root


def test_cli_bad_input_one_line(tiny_world, ckpts, tmp_path, capsys):
    root = _copy_world(tiny_world, tmp_path)
    base = ["--posetrack-root", str(root), "--out", str(tmp_path / "o"), "--quiet"]

    def one_line_error(r, *needles):
        assert r.returncode == 2, (r.returncode, r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "Traceback" not in r.stderr
        for n in needles:
            assert n in last, last

    # a checkpoint of the wrong stage
    one_line_error(_main(capsys, *base, "--cue", "oks", "--pose-ckpt", str(ckpts["corr"]), "--corr-ckpt", str(ckpts["corr"])),
                   "--pose-ckpt", "refine.ckpt", "a checkpoint of the 'refine' stage")
    one_line_error(_main(capsys, *base, "--cue", "corr", "--boxes", "gt-poses", "--corr-ckpt", str(ckpts["pose"])),
                   "--corr-ckpt", "pose.ckpt")
    # no checkpoint given and none shipped
    if not (REPO / "weights" / "correspondence.ckpt").exists():
        one_line_error(_main(capsys, *base, "--cue", "corr", "--boxes", "gt-poses"), "--corr-ckpt", "weights")
    # an unknown config key
    one_line_error(_main(capsys, *base, "--cue", "oks", "--boxes", "gt-poses", "tau_cor=0.1"), "tau_cor", "tau_corr")
    # a missing image
    video = sorted((root / "annotations" / "val").glob("*.json"))[0]
    data = json.loads(video.read_text())
    labelled = {a["image_id"] for a in data["annotations"]}
    img = root / [im["file_name"] for im in data["images"] if im["id"] in labelled][2]
    img.unlink()
    one_line_error(_main(capsys, *base, "--cue", "flow", "--boxes", "gt-poses"), str(img), "image missing")
    # an empty (undecodable) image file
    img.write_bytes(b"")
    one_line_error(_main(capsys, *base, "--cue", "flow", "--boxes", "gt-poses"), str(img), "unreadable or empty")
    # a video without labels
    original = video.read_text()
    data["annotations"] = []
    video.write_text(json.dumps(data))
    one_line_error(_main(capsys, *base, "--cue", "oks", "--boxes", "gt-poses"), video.name, "no labelled frame")
    video.write_text(original)
    # a missing detection file
    one_line_error(_main(capsys, *base, "--cue", "oks", "--boxes", "detections", "--pose-ckpt", str(ckpts["pose"]),
                        "--corr-ckpt", str(ckpts["corr"])), "detection file missing")
    # no annotations folder
    one_line_error(_main(capsys, "--posetrack-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--cue", "oks"),
                   "annotations/val")


def test_cli_detections(tiny_world, ckpts, tmp_path, capsys):
    out = tmp_path / "out"
    r = _main(capsys, "--posetrack-root", str(tiny_world / "posetrack"), "--out", str(out), "--cue", "corr", "--boxes",
             "detections", "--max-videos", "1", "--pose-ckpt", str(ckpts["pose"]), "--corr-ckpt",
             str(ckpts["corr"]), "--quiet", *SMALL, *UNTRAINED, "labeled_only=true")
    assert r.returncode == 0, r.stderr
    table = json.loads((out / "results" / "table.json").read_text())
    assert table["config"]["boxes"] == "detections" and table["frames"] > 0
    pred = json.loads(next(out.glob("*.json")).read_text())
    assert pred["annotations"] and all(len(a["scores"]) == 17 for a in pred["annotations"])
    assert np.isfinite([v for a in pred["annotations"] for v in a["keypoints"]]).all()


def test_tracking_benchmark_reports_every_cue(tiny_world, models, capsys):
    """The speed benchmark runs (figures, not a timed test): frames/s and a breakdown per cue."""
    from corrtrack.tracking.bench import HistogramEmbedder, format_bench, run_tracking_bench

    m = Models(pose=models.pose, corr=models.corr, reid=HistogramEmbedder())
    res = run_tracking_bench(tiny_world, "val", 1, TrackingConfig.from_overrides(SMALL), m, ("oks", "reid", "corr"),
                             max_frames=8, warmup=False)
    assert set(res["per_cue"]) == {"oks", "reid", "corr"}
    n = len(load_videos(tiny_world / "posetrack", "val", 1)[0].head(8).labeled())
    for r in list(res["per_cue"].values()) + [res["all"]]:
        assert r["fps"] > 0 and r["frames"] == n
        assert r["breakdown"]["pose"] > 0 and r["breakdown"]["features"] > 0
    assert res["per_cue"]["reid"]["breakdown"]["reid"] > 0 and res["per_cue"]["oks"]["breakdown"]["reid"] == 0
    assert "frames/s" in format_bench(res)


def test_checkpoint_latest_and_shipped_default(ckpts, tmp_path, monkeypatch):
    """--corr-ckpt latest: the newest refine run under the output root, else the newest siamese run."""
    from corrtrack.tracking import TrackingInputError
    from corrtrack.tracking.models import DEFAULT_WEIGHTS, resolve_weights

    run = tmp_path / "siamese" / "run1" / "checkpoints"
    run.mkdir(parents=True)
    shutil.copy(ckpts["corr"], run / "last.ckpt")
    (tmp_path / "siamese" / "latest").symlink_to(tmp_path / "siamese" / "run1")
    assert resolve_weights("corr", "latest", tmp_path) == run / "last.ckpt"
    with pytest.raises(TrackingInputError, match="--pose-ckpt latest: no finetune or pose run"):
        resolve_weights("pose", "latest", tmp_path)
    monkeypatch.setitem(DEFAULT_WEIGHTS, "reid", tmp_path / "weights" / "reid.ckpt")
    with pytest.raises(TrackingInputError, match="--reid-ckpt not given and the shipped default .*reid.ckpt"):
        resolve_weights("reid", None)


def test_tracking_tables_script_writes_both_tables(tiny_world, ckpts, tmp_path):
    """experiments.tracking_tables: Table 2 rows for every cue of the chosen candidates, Table 3 for
    recovery on/off x thresholds, the JSON and markdown files, and the per-setting partial file."""
    from experiments.tracking_tables import CUES, main as tables_main

    out = tmp_path / "tables"
    rc = tables_main(["--posetrack-root", str(tiny_world / "posetrack"), "--out", str(out), "--pose-ckpt",
                      str(ckpts["pose"]), "--corr-ckpt", str(ckpts["corr"]), "--boxes", "gt-poses",
                      "--thresholds", "0", "0.3", "--max-videos", "1", *SMALL, *UNTRAINED])
    assert rc == 0
    res = json.loads((out / "tables.json").read_text())
    assert set(res["table2"]) == {"gt-poses"} and set(res["table2"]["gt-poses"]) == set(CUES)
    assert res["table2"]["gt-poses"]["oks"]["map"] == pytest.approx(100.0)
    assert set(res["table3"]) == {"on", "off"} and set(res["table3"]["on"]) == {"0.0", "0.3"}
    assert json.loads((out / "tables.partial.json").read_text())["table3"] == res["table3"]
    assert "Table 3 analogue" in (out / "tables.md").read_text()
    # --cues corr: Table 2 holds the correspondence cue alone, with the same numbers; Table 3 is unchanged
    out2 = tmp_path / "tables-corr"
    assert tables_main(["--posetrack-root", str(tiny_world / "posetrack"), "--out", str(out2), "--pose-ckpt",
                        str(ckpts["pose"]), "--corr-ckpt", str(ckpts["corr"]), "--boxes", "gt-poses", "--cues",
                        "corr", "--thresholds", "0", "0.3", "--max-videos", "1", *SMALL, *UNTRAINED]) == 0
    res2 = json.loads((out2 / "tables.json").read_text())
    assert res2["table2"] == {"gt-poses": {"corr": res["table2"]["gt-poses"]["corr"]}}
    assert res2["table3"] == res["table3"]


def test_frames_without_candidates_with_every_cue(tiny_world, models):
    """Detections that leave frames empty (here: none at all): every cue's inputs are computed without
    error and the tracker writes empty frames."""
    from corrtrack.tracking.models import load_reid
    from corrtrack.weights import shipped

    video = load_videos(tiny_world / "posetrack", "val", 1)[0].head(3)
    cfg = TrackingConfig.from_overrides(["boxes=detections", *SMALL, *UNTRAINED])
    m = Models(pose=models.pose, corr=models.corr, reid=load_reid(shipped("reid")))
    cache = precompute_video(video, cfg, m, cues=["oks", "flow", "reid", "corr"], detections={})
    assert all(len(c) == 0 for c in cache.candidates.values())
    assert all(e.shape[0] == 0 for e in cache.embeddings.values())
    for cue in ("oks", "flow", "reid", "corr"):
        seq = track(cache, cfg, cue, m).to_sequence()
        assert all(not fr.persons for fr in seq.frames)


def test_benchmark_out_file(tmp_path, capsys):
    """The tracking benchmarks' --out: the result as JSON in a folder made for it; nothing without it."""
    from corrtrack.tracking.bench import write_result

    out = tmp_path / "a" / "b.json"
    write_result(str(out), {"fps": 1.5})
    assert json.loads(out.read_text()) == {"fps": 1.5} and f"wrote {out}" in capsys.readouterr().out
    write_result(None, {"fps": 2.0})
    assert capsys.readouterr().out == ""


def test_the_command_lines_offer_every_tracking_preset():
    """corrtrack.track lists its --preset choices without importing the tracker (fast start-up); they must
    stay the presets TrackingConfig knows, and each must build a valid config."""
    from corrtrack.track import _parser
    from corrtrack.tracking.config import PRESETS, TrackingConfig

    action = next(a for a in _parser()._actions if "--preset" in a.option_strings)
    assert sorted(action.choices) == sorted(PRESETS)
    assert TrackingConfig.preset("shipped").tau_corr == 0.0 and TrackingConfig.preset("shipped").recovery_box == "shifted"
