"""The tracking sweeps' disk cache (corrtrack.tracking.store): a second run with the same networks and
precomputation settings runs no network and tracks to the same result; another checkpoint or a key the
precomputation depends on computes again; a missing part is added on the stored candidates."""
from __future__ import annotations

import numpy as np
import pytest

from corrtrack.tracking import TrackingConfig, load_videos, track_videos
from corrtrack.tracking.models import load_models
from corrtrack.tracking.store import CacheStore
from tracking_helpers import save_tiny_checkpoints

SETTINGS = ["input_size=128", "joint_threshold=0", "match_joint_threshold=0"]   # tiny untrained nets


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    return save_tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def video(tiny_world):
    return [v.head(12) for v in load_videos(tiny_world / "posetrack", "val", max_videos=1)]


def _run(videos, config, cues, ckpts, cache_dir):
    """track_videos with a store; returns (cache, results, store, network calls)."""
    models, _ = load_models(config, list(cues), ckpts.get("pose"), ckpts.get("corr"))
    calls = {"pose": 0, "trunk": 0}
    if models.pose is not None:
        est = models.pose.estimate
        models.pose.estimate = lambda *a: (calls.__setitem__("pose", calls["pose"] + 1), est(*a))[1]
    if models.corr is not None:
        models.corr.siamese.register_forward_hook(lambda *a: calls.__setitem__("trunk", calls["trunk"] + 1))
    store = CacheStore(cache_dir, models.files)
    [(_, cache, results)] = list(track_videos(videos, config, models, cues, progress=False, store=store))
    return cache, results, store, calls


def _same(r1, r2):
    return r1.ids.keys() == r2.ids.keys() and all(np.array_equal(r1.ids[f], r2.ids[f]) for f in r1.ids)


def test_second_run_reads_the_cache_and_tracks_the_same(video, ckpts, tmp_path):
    cfg = TrackingConfig.from_overrides(SETTINGS)
    c1, r1, s1, n1 = _run(video, cfg, ["corr"], ckpts, tmp_path)
    assert n1["pose"] > 0 and n1["trunk"] > 0 and dict(s1.misses) == {"candidates": 1}
    folder = next((tmp_path / video[0].name).iterdir())
    assert {p.name.split("-")[0] for p in folder.iterdir()} == {"key.json", "candidates.pkl", "corr"}
    c2, r2, s2, n2 = _run(video, cfg, ["corr"], ckpts, tmp_path)
    assert n2 == {"pose": 0, "trunk": 0} and dict(s2.hits) == {"candidates": 1, "corr": 1} and not s2.misses
    assert _same(r1["corr"], r2["corr"])
    assert all(np.array_equal(c1.pairs[k].corr, c2.pairs[k].corr) for k in c1.pairs)
    # settings outside the precomputation: still no network
    cfg3 = cfg.replace(tau_corr=0.6, joint_threshold=0.2, solver="hungarian")
    _, r3, s3, n3 = _run(video, cfg3, ["corr"], ckpts, tmp_path)
    assert n3 == {"pose": 0, "trunk": 0} and not s3.misses
    assert r3["corr"].config.tau_corr == 0.6


def test_changed_checkpoint_or_dependent_key_computes_again(video, ckpts, tmp_path):
    cfg = TrackingConfig.from_overrides(SETTINGS)
    _run(video, cfg, ["corr"], ckpts, tmp_path / "c")
    other = save_tiny_checkpoints(tmp_path / "other", seed=1)          # other weights, other bytes
    for changed in ({"pose": other["pose"], "corr": ckpts["corr"]}, {"pose": ckpts["pose"], "corr": other["corr"]}):
        _, _, s, n = _run(video, cfg, ["corr"], changed, tmp_path / "c")
        assert s.misses["candidates"] == 1 and n["pose"] > 0, changed
    for override in ({"recovery_max_oks": 0.5}, {"recovery": False}, {"nms_oks": 0.6}, {"max_age": 1}):
        _, _, s, n = _run(video, cfg.replace(**override), ["corr"], ckpts, tmp_path / "c")
        assert s.misses["candidates"] == 1 and n["pose"] > 0, override
    # the same checkpoint copied elsewhere: same bytes, same key
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(ckpts["corr"].read_bytes())
    _, _, s, n = _run(video, cfg, ["corr"], {"pose": ckpts["pose"], "corr": copy}, tmp_path / "c")
    assert not s.misses and n == {"pose": 0, "trunk": 0}


def test_missing_part_is_added_on_the_stored_candidates(video, ckpts, tmp_path):
    cfg = TrackingConfig.from_overrides(SETTINGS + ["recovery=false"])
    _, r_oks, s1, _ = _run(video, cfg, ["oks"], ckpts, tmp_path)
    assert dict(s1.misses) == {"candidates": 1}
    c2, _, s2, n2 = _run(video, cfg, ["oks", "corr"], ckpts, tmp_path)   # candidates stored, corr not yet
    assert s2.hits["candidates"] == 1 and s2.misses["corr"] == 1 and n2["pose"] == 0 and n2["trunk"] > 0
    _, r3, s3, n3 = _run(video, cfg, ["oks", "corr"], ckpts, tmp_path)
    assert n3 == {"pose": 0, "trunk": 0} and not s3.misses and _same(r_oks["oks"], r3["oks"])
    _, _, s4, _ = _run(video, cfg.replace(input_size=160), ["oks", "corr"], ckpts, tmp_path)
    assert s4.hits["candidates"] == 1 and s4.misses["corr"] == 1        # input size: corr part only (no recovery)


def test_gt_poses_need_no_checkpoint_in_the_key(video, ckpts, tmp_path):
    cfg = TrackingConfig.from_overrides(SETTINGS + ["boxes=gt-poses", "cue=oks"])
    _run(video, cfg, ["oks"], {}, tmp_path)
    _, _, s, _ = _run(video, cfg.replace(joint_threshold=0.5), ["oks"], {}, tmp_path)
    assert dict(s.hits) == {"candidates": 1} and not s.misses
