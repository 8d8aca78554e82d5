"""Sweeps (experiments/sweep.py, experiments/sweeps/*.yaml): the files follow W&B's sweep format and
sweep real config keys; grid and random expansion; the offline runner end to end on a 4-point tracking
grid with 2 workers (summary table, heat map, one offline W&B run per point, networks run once); the
make target's offline path; online detection without network."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments import sweep as sw
from tracking_helpers import save_tiny_checkpoints

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))


def test_the_three_sweep_files_exist_and_are_valid():
    assert {f.stem for f in FILES} >= {"tracking", "siamese", "refine"}
    for f in FILES:
        cfg = sw.load_sweep(f)
        assert sw.format_errors(cfg) == [] and sw.swept_key_errors(cfg) == [], f
        assert "${args_no_hyphens}" in cfg["command"] and cfg["metric"]["goal"] == "maximize"
    tr = sw.load_sweep("tracking")
    assert tr["method"] == "grid" and {"tau_corr", "joint_threshold"} <= set(tr["parameters"])
    assert sw.load_sweep("siamese")["metric"]["name"] == sw.load_sweep("refine")["metric"]["name"] == "track/corr/mota"
    assert sw.load_sweep("siamese")["method"] in ("random", "bayes") and sw.load_sweep("refine")["method"] in ("random", "bayes")


def test_format_checks_catch_mistakes():
    good = {"method": "grid", "metric": {"name": "m", "goal": "maximize"},
            "parameters": {"tau_corr": {"values": [0.1, 0.2]}}, "command": ["${env}", "${interpreter}", "x"]}
    assert sw.format_errors(good) == []
    bad = [({**good, "method": "hill"}, "method"), ({**good, "metric": {"name": "m", "goal": "up"}}, "goal"),
           ({**good, "parameters": {"a": {"min": 0.1, "max": 0.5}}}, "grid search"),
           ({**good, "method": "random", "parameters": {"a": {"min": 0.5, "max": 0.1}}}, "min < max"),
           ({**good, "parameters": {"a": {"distribution": "lognormalish", "min": 1, "max": 2}}}, "distribution"),
           ({**good, "command": ["${interp}"]}, "macro"), ({**good, "parmeters": {}}, "top-level"),
           ({**good, "parameters": {"a": {"values": []}}}, "non-empty")]
    for cfg, word in bad:
        errs = sw.format_errors(cfg)
        assert errs and any(word in e for e in errs), (cfg, errs)


def test_swept_keys_must_be_real_config_keys():
    tr = sw.load_sweep("tracking")
    wrong = {**tr, "parameters": {**tr["parameters"], "tau_cor": {"values": [0.1]}}}
    assert any("tau_cor" in e and "tau_corr" in e for e in sw.swept_key_errors(wrong))
    si = sw.load_sweep("siamese")
    wrong = {**si, "parameters": {**si["parameters"], "optim.lrr": {"values": [0.1]}}}
    assert any("optim.lrr" in e for e in sw.swept_key_errors(wrong))
    wrong = {**si, "parameters": {"data.max_persons": {"values": ["many"]}}}
    assert sw.swept_key_errors(wrong)


def test_grid_and_random_expansion():
    cfg = {"method": "grid", "parameters": {"a": {"values": [1, 2, 3]}, "b": {"values": [True, False]},
                                             "c": {"value": "x"}}}
    pts = sw.expand(cfg)
    assert len(pts) == 6 and len({json.dumps(p, sort_keys=True) for p in pts}) == 6 and all(p["c"] == "x" for p in pts)
    assert len(sw.expand(cfg, count=4)) == 4
    rnd = {"method": "random", "run_cap": 7, "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}, "w": {"values": [1, 2]},
        "u": {"distribution": "uniform", "min": 0.0, "max": 1.0}, "n": {"distribution": "int_uniform", "min": 2, "max": 5}}}
    a, b, c = sw.expand(rnd, seed=3), sw.expand(rnd, seed=3), sw.expand(rnd, seed=4)
    assert len(a) == 7 and a == b and a != c and len(sw.expand(rnd, count=3)) == 3
    assert all(1e-5 <= p["lr"] <= 1e-2 and p["w"] in (1, 2) and 0 <= p["u"] <= 1 and 2 <= p["n"] <= 5 for p in a)
    said = []
    assert len(sw.expand({**rnd, "method": "bayes"}, count=5, say=said.append)) == 5
    assert said and "random" in said[0]
    cmd = sw.command_for({"command": ["${env}", "${interpreter}", "-m", "m", "${args_no_hyphens}"]},
                         {"a": 0.5, "b": True}, python="PY")
    assert cmd == ["PY", "-m", "m", "a=0.5", "b=true"]


def test_logged_in_is_detected_without_network(tmp_path):
    assert not sw.logged_in({"HOME": str(tmp_path)})
    assert sw.logged_in({"HOME": str(tmp_path), "WANDB_API_KEY": "k"})
    assert not sw.logged_in({"HOME": str(tmp_path), "WANDB_API_KEY": "k", "WANDB_MODE": "offline"})
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    assert sw.logged_in({"HOME": str(tmp_path)})
    assert not sw.logged_in({"HOME": str(tmp_path), "WANDB_BASE_URL": "https://wandb.example.org"})
    cmds = sw.agent_commands("e/p/abc", 3, 5, ["0", "1"])
    assert [e for _, e in cmds] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"},
                                    {"CUDA_VISIBLE_DEVICES": "0"}]
    assert cmds[0][0][1:] == ["agent", "e/p/abc", "--count", "5"]
    assert sw.agent_commands("e/p/abc", 2, None, ["0"])[1][1] == {}


def test_phases_run_the_networks_once_per_setting():
    pts = [{"tau_corr": t, "recovery": r, "cue": c} for r in (True, False) for c in ("corr", "oks") for t in (0.1, 0.2)]
    first, second, rest = sw.phases(pts, tracking=True)
    assert [pts[i]["recovery"] for i in first] == [True, False]
    assert sorted((pts[i]["recovery"], pts[i]["cue"]) for i in second) == [(False, "oks"), (True, "oks")]
    assert len(rest) == 4 and sw.phases(pts, tracking=False) == [list(range(8))]


@pytest.fixture(scope="module")
def tiny_sweep(tiny_world, tmp_path_factory):
    """A 4-point tau_corr x joint_threshold grid on the tiny world with tiny untrained nets."""
    d = tmp_path_factory.mktemp("sweep")
    ck = save_tiny_checkpoints(d / "ckpt")
    cfg = {"name": "tiny", "program": "experiments/sweep.py", "method": "grid",
           "metric": {"name": "track/mota", "goal": "maximize"},
           "parameters": {"tau_corr": {"values": [0.1, 0.5]}, "joint_threshold": {"values": [0.0, 0.05]}},
           "command": ["${env}", "${interpreter}", "-m", "experiments.sweep", "track", "--posetrack-root",
                       str(tiny_world / "posetrack"), "--max-videos", "1", "--boxes", "gt", "--pose-ckpt",
                       str(ck["pose"]), "--corr-ckpt", str(ck["corr"]), "--cache-dir", str(d / "cache"),
                       "input_size=128", "match_joint_threshold=0", "${args_no_hyphens}"]}
    path = d / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_offline_runner_end_to_end(tiny_sweep, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", WANDB_MODE="offline")
    r = subprocess.run([sys.executable, "-m", "experiments.sweep", "run", str(tiny_sweep), "--agents", "2",
                        "--out-root", str(tmp_path), "--quiet"], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    [out] = list((tmp_path / "tiny").iterdir())
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows), rows
    assert {(row["tau_corr"], row["joint_threshold"]) for row in rows} == {("0.1", "0.0"), ("0.1", "0.05"),
                                                                            ("0.5", "0.0"), ("0.5", "0.05")}
    assert all(row["track/mota"] not in ("", None) for row in rows)
    png = (out / "heatmap.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "Best point" in (out / "summary.md").read_text()
    best = json.loads((out / "best.json").read_text())
    assert float(best["track/mota"]) == max(float(row["track/mota"]) for row in rows)
    for i in range(4):                                  # one offline W&B run per point; one network pass
        point = out / "points" / str(i)
        assert list(point.glob("wandb/offline-run-*")), point
        assert (point / "track" / "results" / "table.json").is_file()
    caches = [json.loads((out / "points" / str(i) / "track" / "results" / "table.json").read_text())["cache"]
              for i in range(4)]
    assert sum(c["misses"].get("candidates", 0) for c in caches) == 1
    assert sum(c["hits"].get("candidates", 0) for c in caches) == 3


def test_sweep_folders_are_never_reused(tmp_path):
    a, b = sw.new_sweep_dir(tmp_path, "x"), sw.new_sweep_dir(tmp_path, "x")
    assert a != b and a.parent == b.parent == tmp_path / "x" and a.is_dir() and b.is_dir()


def test_make_sweep_offline_path(tiny_sweep, tmp_path):
    """`make sweep` with no W&B credentials runs the offline runner on the same file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MAKE"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HOME=str(tmp_path), NETRC=str(tmp_path / "none"))
    # -o: the shared virtualenv is not reinstalled; PY: this interpreter
    r = subprocess.run(["make", "-s", "-o", ".venv/.installed-setup.cfg", "sweep", f"PY={sys.executable}",
                        f"SWEEP={tiny_sweep}", "AGENTS=1", "COUNT=1",
                        f"SWEEP_OUT={tmp_path / 'out'}", "SWEEP_ARGS=--quiet"], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not logged in" in r.stdout
    [out] = list((tmp_path / "out" / "tiny").iterdir())
    assert len(list(csv.DictReader(open(out / "summary.csv")))) == 1 and (out / "heatmap.png").is_file()
