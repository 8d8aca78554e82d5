"""`make reproduce` (experiments/reproduce.py, experiments/results_doc.py): the step plan, the guards of a run
folder, the comparison of two runs, and (slow tier) the smoke scale end to end with its resumption."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corrtrack.cli import InputError
from experiments import reproduce
from experiments.reproduce import SCALES, compare, numbers, plan

REPO = Path(__file__).resolve().parents[1]


def _cmd(steps, name):
    return next(s.command for s in steps if s.name == name)


def test_full_plan_trains_every_stage_with_the_cpu_presets_and_fixed_seeds(tmp_path):
    steps = plan(SCALES["full"], tmp_path / "run", tmp_path / "synth")
    names = [s.name for s in steps]
    assert names == ["world-hard-seed0", "world-hard-seed1", "world-hard-seed2", "train-finetune", "train-siamese",
                     "train-refine", "train-reid", "tables-hard-seed1", "tables-hard-seed2", "track", "sweep",
                     "propagation"]
    for stage in reproduce.STAGES:
        cmd = _cmd(steps, f"train-{stage}")
        assert cmd[cmd.index("experiments.run") + 1: cmd.index("experiments.run") + 3] == [stage, "cpu"]
        assert {"seed=0", "data.synth.seed=0", "trainer.max_time=null", "run_id=repro-run"} <= set(cmd)
    refine = _cmd(steps, "train-refine")
    assert f"model.siamese_ckpt={tmp_path / 'run' / 'outputs' / 'siamese' / 'repro-run'}" in refine
    tables = _cmd(steps, "tables-hard-seed2")
    assert str(tmp_path / "synth" / "hard-seed2" / "posetrack") in tables and "shipped" in tables
    assert "--render" in _cmd(steps, "track")
    # every step's outputs are in the run folder (the worlds aside)
    for s in steps[3:]:
        assert any(str(tmp_path / "run") in c for c in s.command), s.name


def test_sweep_file_is_the_shipped_one_pointed_at_the_run(tmp_path):
    steps = plan(SCALES["smoke"], tmp_path / "run", tmp_path / "synth")
    next(s for s in steps if s.name == "sweep").prepare()
    cfg = __import__("yaml").safe_load((tmp_path / "run" / "sweep" / "tracking.yaml").read_text())
    from experiments.sweep import format_errors, swept_key_errors

    assert format_errors(cfg) == [] and swept_key_errors(cfg) == []
    cmd = cfg["command"]
    assert cmd[cmd.index("--posetrack-root") + 1] == str(tmp_path / "synth" / "tiny-seed0" / "posetrack")
    assert cmd[cmd.index("--corr-ckpt") + 1] == str(tmp_path / "run" / "outputs" / "refine" / "repro-run")
    assert set(cfg["parameters"]) == {"tau_corr", "joint_threshold", "recovery", "cue"}


def test_a_run_folder_of_other_settings_is_refused_and_unknown_steps_too(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "plan.json").write_text(json.dumps({"scale": "full", "steps": {}}))
    with pytest.raises(InputError, match="other settings"):
        reproduce.run(SCALES["smoke"], run, tmp_path / "synth", say=lambda _: None)
    with pytest.raises(InputError, match="no such step"):
        reproduce.run(SCALES["smoke"], run, tmp_path / "synth", force=["train-nothing"], say=lambda _: None)


def _fake_run(root: Path, mota: float, sweep_seconds: float = 1.0) -> Path:
    t = root / "tables" / "w"
    t.mkdir(parents=True)
    (root / "steps.json").write_text("{}")
    (t / "tables.json").write_text(json.dumps({"table2": {"gt": {"oks": {"mota": mota, "idsw": 3}}},
                                               "table3": {"on": {"0.3": {"map": 40.0, "mota": mota}}}}))
    sw = root / "sweep" / "tracking" / "20260101-000000"
    sw.mkdir(parents=True)
    (sw / "summary.csv").write_text("point,tau_corr,track/mota,track/seconds,seconds\n"
                                    f"0,0.1,{mota},{sweep_seconds},{sweep_seconds + 0.5}\n")
    return root


def test_compare_names_every_number_that_differs(tmp_path):
    a, b = _fake_run(tmp_path / "a", 10.0), _fake_run(tmp_path / "b", 10.5)
    assert compare(a, a) == []
    assert numbers(a)["tables/w/table2/gt/oks/idsw"] == 3.0
    diffs = compare(a, b)
    assert len(diffs) == 3 and all("10.0 vs 10.5" in d for d in diffs)
    assert "sweep/0/track/mota: 10.0 vs 10.5" in diffs
    # run times are not results: a slower rerun with the same numbers compares equal
    assert compare(a, _fake_run(tmp_path / "slow", 10.0, sweep_seconds=7.0)) == []
    assert reproduce.main(["compare", str(a), str(b)]) == 1 and reproduce.main(["compare", str(a), str(a)]) == 0


def _fake_plan(tmp_path, fail=()):
    """Three steps: a and b independent (2 s each), c after both; each writes its marker file."""
    def step(name, after=()):
        out = tmp_path / f"{name}.done"
        code = (f"import sys, time, pathlib; time.sleep(2); "
                f"sys.exit(1) if {name in fail} else pathlib.Path({str(out)!r}).write_text('x')")
        return reproduce.Step(name, [sys.executable, "-c", code], done=out.is_file, after=after)
    return lambda *a, **k: [step("a"), step("b"), step("c", after=("a", "b"))]


def test_jobs_run_independent_steps_side_by_side_and_the_wall_time_is_their_union(tmp_path, monkeypatch):
    from experiments.results_doc import wall_seconds

    monkeypatch.setattr(reproduce, "plan", _fake_plan(tmp_path))
    rec = reproduce.run(SCALES["smoke"], tmp_path / "run", tmp_path / "synth", say=lambda _: None, jobs=2)
    (a0, a1), = rec["a"]["intervals"]
    (b0, b1), = rec["b"]["intervals"]
    (c0, c1), = rec["c"]["intervals"]
    assert a0 < b1 and b0 < a1                      # a and b overlapped
    assert c0 >= max(a1, b1)                        # c waited for both
    assert list(json.loads((tmp_path / "run" / "steps.json").read_text())) == ["a", "b", "c"]
    assert wall_seconds(rec) == pytest.approx((max(a1, b1) - min(a0, b0)) + (c1 - c0))   # the union
    assert wall_seconds(rec) < sum(s["seconds"] for s in rec.values()) - 1.0
    # union of intervals, and the sum where a record has none
    assert wall_seconds({"x": {"seconds": 10, "intervals": [[0, 10]]}, "y": {"seconds": 7, "intervals": [[5, 12]]},
                         "z": {"seconds": 5, "intervals": [[20, 25]]}}) == 17
    assert wall_seconds({"x": {"seconds": 10}, "y": {"seconds": 7}, "z": {"seconds": None}}) == 17
    with pytest.raises(InputError, match="--jobs 0"):
        reproduce.run(SCALES["smoke"], tmp_path / "run", tmp_path / "synth", say=lambda _: None, jobs=0)


def test_a_failed_step_lets_the_running_one_finish_and_starts_nothing_after_it(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "plan", _fake_plan(tmp_path, fail=("a",)))
    with pytest.raises(reproduce.StepFailed, match="step a failed .*logs/a.log"):
        reproduce.run(SCALES["smoke"], tmp_path / "run", tmp_path / "synth", say=lambda _: None, jobs=2)
    rec = json.loads((tmp_path / "run" / "steps.json").read_text())
    assert rec["a"]["returncode"] == 1 and rec["b"]["returncode"] == 0 and "c" not in rec
    assert (tmp_path / "b.done").is_file() and not (tmp_path / "c.done").exists()


def test_a_run_killed_mid_step_keeps_the_steps_time_and_the_resumed_step_counts_both_parts(tmp_path, monkeypatch):
    """The reproduce process itself is killed (session end) while a training step runs: steps.json still has
    the time that step ran (kept up to date by a heartbeat); the rerun resumes it and counts both parts."""
    marker, run_dir = tmp_path / "a.done", tmp_path / "run"
    script = f"""
import sys, time
from pathlib import Path
from experiments import reproduce
reproduce.HEARTBEAT_S = 0.2
reproduce.plan = lambda *a, **k: [reproduce.Step("a", [sys.executable, "-c", "import time; time.sleep(60)"],
                                                 done=Path({str(marker)!r}).is_file)]
reproduce.run(reproduce.SCALES["smoke"], Path({str(run_dir)!r}), Path({str(tmp_path)!r}), say=lambda _: None)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    import time
    time.sleep(3.0)
    os.killpg(proc.pid, 9)
    proc.wait()
    first = json.loads((run_dir / "steps.json").read_text())["a"]
    assert first["status"] == "running"
    (a0, a1), = first["intervals"]
    assert 1.0 < a1 - a0 < 3.5 and first["seconds"] == pytest.approx(a1 - a0, abs=0.2)

    resume_cmd = [sys.executable, "-c", f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')"]
    monkeypatch.setattr(reproduce, "plan", lambda *a, **k: [reproduce.Step(
        "a", [sys.executable, "-c", "import time; time.sleep(60)"], done=marker.is_file, resume=lambda: resume_cmd)])
    rec = reproduce.run(SCALES["smoke"], run_dir, tmp_path, say=lambda _: None)["a"]
    assert rec["status"] == "ran" and rec["command"] == resume_cmd and len(rec["intervals"]) == 2
    assert rec["intervals"][0] == [a0, a1]
    second = rec["intervals"][1][1] - rec["intervals"][1][0]
    assert rec["seconds"] == pytest.approx(first["seconds"] + second, abs=0.3)


# ------------------------------------------------------------------------------------------ slow tier
def _table_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.startswith("|")}


def _expected_rows(run: Path) -> list[str]:
    """The table rows the results file must hold, formatted here from the steps' JSON / CSV files."""
    from corrtrack.bench.propagation import COLUMNS, ROW_TITLES, ROWS
    from corrtrack.tracking.pipeline import CUE_TITLES

    rows = []
    for f in run.glob("tables/*/tables.json"):
        res = json.loads(f.read_text())
        for b, cues in res["table2"].items():
            for c, r in cues.items():
                rows.append(f"| {b} | {CUE_TITLES.get(c, c)} | {r['idsw']} | {r['mota']:.1f} | {r['map']:.1f} | "
                            f"{r['hota']:.1f} |")
        for rec, by_t in res["table3"].items():
            rows.append(f"| {rec} | " + " | ".join(f"{v['map']:.1f} / {v['mota']:.1f}" for v in by_t.values()) + " |")
    prop = json.loads((run / "propagation" / "propagation.json").read_text())["table"]
    for r in ROWS:
        cells = ["n/a" if prop[r][c]["pckh"] is None else f"{prop[r][c]['pckh']:.1f}" for c in COLUMNS]
        n = prop[r][COLUMNS[0]]["joints"]
        rows.append(f"| {ROW_TITLES[r]} | {'n/a' if n is None else n} | " + " | ".join(cells) + " |")
    summary = next(run.glob("sweep/tracking/*/summary.csv"))
    for row in csv.DictReader(open(summary)):
        rows.append(f"{float(row['track/mota']):.1f}")
    return rows


@pytest.mark.slow
def test_smoke_reproduce_end_to_end_then_a_rerun_skips_every_step(tmp_path, tiny_world):
    out, doc, assets = tmp_path / "runs", tmp_path / "RESULTS.md", tmp_path / "assets"
    argv = [sys.executable, "-m", "experiments.reproduce", "--scale", "smoke", "--out-root", str(out), "--synth-root",
            str(tiny_world.parent), "--results", str(doc), "--assets", str(assets)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout + r.stderr
    run = out / "smoke"
    text = doc.read_text()
    assert text.startswith("# Results of `make reproduce` (smoke scale)") and "Wall time: " in text
    assert "candidates: the world's person detections" in text          # read from the shipped sweep file
    steps = json.loads((run / "steps.json").read_text())
    assert [n for n, s in steps.items() if s["status"] == "ran"] == [n for n in steps if n != "world-tiny-seed0"]
    lines = _table_lines(text)
    for row in _expected_rows(run):
        if row.startswith("|"):
            assert row in lines, row
        else:                                              # a cell of the sweep's MOTA grid
            assert any(f" {row} |" in line for line in lines), row
    pictures = sorted(p.name for p in assets.glob("*.png"))
    assert "sweep-heatmap.png" in pictures and "propagation.png" in pictures
    assert sum(p.startswith("frame-") for p in pictures) == 3
    for p in pictures:
        assert f"({os.path.relpath(assets / p, doc.parent)})" in text

    first = numbers(run)
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("done earlier, skipped") == len(steps), r.stdout
    assert numbers(run) == first and _table_lines(doc.read_text()) == lines

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    f = next(copy.glob("tables/*/tables.json"))
    res = json.loads(f.read_text())
    res["table2"]["gt"]["corr"]["mota"] += 1.0
    f.write_text(json.dumps(res))
    assert compare(run, copy) == [f"tables/{f.parent.name}/table2/gt/corr/mota: "
                                  f"{first[f'tables/{f.parent.name}/table2/gt/corr/mota']} vs "
                                  f"{res['table2']['gt']['corr']['mota']}"]


def test_results_file_takes_the_commit_before_it_replaces_its_own_pictures(tmp_path, monkeypatch):
    """The pictures of the results file are tracked files: deleting them first would mark the checkout dirty."""
    from experiments import results_doc

    run, assets = tmp_path / "run", tmp_path / "assets"
    run.mkdir()
    assets.mkdir()
    (run / "steps.json").write_text("{}")
    old = assets / "sweep-heatmap.png"
    old.write_bytes(b"earlier run")
    seen = []

    def fake_commit():
        seen.append(old.is_file())
        raise RuntimeError("stop here")

    monkeypatch.setattr(results_doc, "commit", fake_commit)
    with pytest.raises(RuntimeError, match="stop here"):
        results_doc.write_results(run, SCALES["smoke"], tmp_path / "RESULTS.md", assets, "cmd")
    assert seen == [True]
