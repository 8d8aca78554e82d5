"""SLURM job files (experiments/slurm/) and their restart semantics.

Fast tier: the job files' directives (one task per GPU, SIGUSR1 before the time limit, requeue, appended
log in a folder a fresh clone has), the CPU guard of the GPU-only ``cluster`` preset, the run folder of a
sweep agent's runs. Slurm tier (``make test-slurm``, marker ``slurm``): a real one-node SLURM on localhost
(tests/slurm_localhost.py) runs the ``debug`` preset as a 2-task CPU DDP job through
experiments/slurm/train-cpu.sbatch from a fresh copy of the repository, once without interruption and
once requeued twice mid-run (``scontrol requeue``: SIGTERM; then SIGUSR1, after which the run requeues the
job itself); the requeued job must finish in its one run folder, resumed, with the uninterrupted job's
metrics and its log appended across the three starts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from run_helpers import metrics_history

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLURM_DIR = ROOT / "experiments" / "slurm"
JOB_FILES = sorted(SLURM_DIR.glob("*.sbatch"))


def _directives(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"#SBATCH\s+--([\w-]+)(?:=(\S+))?", line)
        if m:
            out[m.group(1)] = m.group(2) or ""
    return out


# ------------------------------------------------------------------------------------------ fast tier

def test_job_files_parse_and_ask_for_signal_requeue_and_an_appended_log_in_a_shipped_folder():
    names = {p.name for p in JOB_FILES}
    assert {"train.sbatch", "train-cpu.sbatch", "sweep-array.sbatch", "siamese.sbatch", "refine.sbatch",
            "pose.sbatch", "finetune.sbatch", "reid.sbatch"} <= names
    tracked = subprocess.run(["git", "ls-files", "experiments/slurm/logs"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    for path in [*JOB_FILES, SLURM_DIR / "launch.sh"]:
        r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{path.name}: {r.stderr}"
    for path in JOB_FILES:
        d = _directives(path)
        assert d.get("open-mode") == "append", f"{path.name}: the log must be appended across restarts"
        assert "requeue" in d, path.name
        assert re.fullmatch(r"(B:)?USR1@\d+", d.get("signal", "")), f"{path.name}: no SIGUSR1 before the time limit"
        out = d.get("output", "")
        assert out.startswith("experiments/slurm/logs/"), f"{path.name}: --output={out}"
        # SLURM opens the log before the script runs: its folder must exist in a fresh clone
        assert "experiments/slurm/logs/.gitignore" in tracked or (SLURM_DIR / "logs" / ".gitignore").is_file()
        if path.name == "train-cpu.sbatch":
            assert not any(k.startswith("gpus") or k == "gres" for k in d), "the CPU variant must not ask for GPUs"
        elif path.name != "sweep-array.sbatch":
            assert d.get("gpus-per-node") == d.get("ntasks-per-node"), f"{path.name}: one task per GPU"
    assert "srun" in (SLURM_DIR / "launch.sh").read_text()


@pytest.mark.parametrize("extra, words", [
    (["trainer.accelerator=cpu", "trainer.precision=16-mixed"], "trainer.precision: '16-mixed'"),
    (["trainer.accelerator=cpu", "trainer.precision=32-true"], "trainer.sync_batchnorm"),
])
def test_the_gpu_only_cluster_preset_on_cpu_is_one_line_naming_the_key(extra, words, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-m", "experiments.run", "siamese", "debug", "cluster",
                        f"output_root={tmp_path}", *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0] and "cluster-cpu" in lines[0], r.stderr
    assert not any((tmp_path / "siamese").glob("*/checkpoints")), "a refused run must not leave a run folder"


def test_cluster_cpu_preset_is_the_cpu_override():
    from experiments.config import load_config
    from experiments.run import check_device

    cfg = load_config("siamese", ["debug", "cluster-cpu"])
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "32-true"
    assert cfg.trainer.strategy == "ddp" and not cfg.trainer.sync_batchnorm
    check_device(cfg)     # no error


def test_each_run_of_a_sweep_agent_in_one_slurm_job_gets_its_own_folder(tmp_path, monkeypatch):
    from experiments.config import load_config
    from experiments.run import plan_run

    for k in ("SLURM_ARRAY_JOB_ID", "SLURM_PROCID", "RANK", "LOCAL_RANK", "CORRTRACK_RUN_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    cfg = load_config("siamese", ["debug"], [f"output_root={tmp_path}"])
    assert plan_run(cfg).run_dir.name == "slurm-70_3"
    monkeypatch.setenv("WANDB_SWEEP_ID", "sw1")
    monkeypatch.setenv("WANDB_RUN_ID", "abc")
    first = plan_run(cfg).run_dir
    monkeypatch.setenv("WANDB_RUN_ID", "def")
    assert first.name == "slurm-70_3-abc" and plan_run(cfg).run_dir.name == "slurm-70_3-def"


# ------------------------------------------------------------------------------------------ slurm tier

# 2 epochs x 8 batches per rank (batch 2): 16 optimisation steps, last.ckpt rewritten after every step
RUN = ["trainer.max_steps=-1", "trainer.max_epochs=2", "trainer.limit_train_batches=8", "trainer.limit_val_batches=1",
       "model.width=0.125", "data.input_size=64", "data.val_max_images=4", "data.batch_size=2",
       "figures.every_n_validations=0", "cpu_threads=1", "trainer.enable_progress_bar=false",
       "checkpoint.every_n_train_steps=1"]
STEPS = 16


def _fresh_copy(dst: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked and not-ignored files; no outputs/, no
    job logs), with the running virtualenv as .venv."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(src.read_bytes())
    (dst / ".venv").symlink_to(Path(sys.prefix))
    return dst


def _summary(run: Path) -> dict:
    try:
        return json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait(cond, timeout: float, what: str, slurm, job: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        info = slurm.job(job)
        if info.get("JobState") in {"COMPLETED", "FAILED", "CANCELLED"}:
            break
        _release_requeue_hold(slurm, job, info)
        time.sleep(0.2)
    raise AssertionError(f"job {job}: gave up waiting until {what} (state {slurm.job(job).get('JobState')})")


def _release_requeue_hold(slurm, job: str, info: dict) -> None:
    """SLURM holds a requeued job for about two minutes (Reason=BeginTime); let it start now."""
    if info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime":
        slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)


@pytest.mark.slurm
def test_a_requeued_two_task_cpu_job_resumes_in_its_folder_with_the_metrics_of_an_uninterrupted_one(
        tmp_path_factory, world_overrides):
    from slurm_localhost import LocalSlurm

    work = tmp_path_factory.mktemp("slurm")
    repo = _fresh_copy(work / "clone")
    out = work / "outputs"
    args = ["siamese", "debug", *world_overrides, f"output_root={out}", *RUN]
    env = {"PYTHONPATH": str(repo), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for k in ("CORRTRACK_RUN_DIR", "CORRTRACK_RESUME_CKPT"):
        os.environ.pop(k, None)
    sbatch = ["--cpus-per-task=1", "experiments/slurm/train-cpu.sbatch"]
    t0 = time.time()
    with LocalSlurm(work / "slurm") as slurm:
        ref = slurm.sbatch(["--job-name=ct-ref", *sbatch, *args], cwd=repo, env=env)
        slurm.wait_state(ref, {"COMPLETED"}, 1800, "(uninterrupted)")
        t_ref = time.time() - t0

        job = slurm.sbatch(["--job-name=ct-req", *sbatch, *args], cwd=repo, env=env)
        run = out / "siamese" / f"slurm-{job}"
        last = run / "checkpoints" / "last.ckpt"
        _wait(last.is_file, 1800, "the run has written a checkpoint", slurm, job)
        slurm.run("scontrol", "requeue", job)                       # SIGTERM, like a preemption
        _wait(lambda: len(_summary(run).get("segments", [])) == 2 and last.stat().st_mtime
              > time.mktime(time.strptime(_summary(run)["segments"][1]["started"], "%Y-%m-%d %H:%M:%S")) + 1,
              1800, "the requeued job has trained a step", slurm, job)
        slurm.run("scancel", "--signal=USR1", job)                  # SLURM's warning before the time limit
        _wait(lambda: len(_summary(run).get("segments", [])) == 3, 1800, "the job requeued itself after SIGUSR1",
              slurm, job)
        _wait(lambda: slurm.job(job).get("JobState") != "PENDING", 600, "the job restarted", slurm, job)
        info = slurm.wait_state(job, {"COMPLETED"}, 1800, "(requeued twice)")
        t_total = time.time() - t0
    print(f"\n[test-slurm] uninterrupted job {t_ref:.0f} s; both jobs, daemons included, {t_total:.0f} s")

    whole, part = out / "siamese" / f"slurm-{ref}", run
    assert sorted(p.name for p in (out / "siamese").iterdir() if not p.is_symlink()) == sorted([whole.name, part.name])
    s = _summary(part)
    segs = s["segments"]
    assert s["slurm_job_id"] == job and s["status"] == "finished" and s["global_step"] == STEPS, s
    assert len(segs) == 3 and int(info.get("Restarts", 0)) == 2, (segs, info)
    # SIGTERM: the run saves after its current step; on a starved machine that step may outlast KillWait and
    # SIGKILL ends it unsaved (ending None), which is the node-failure case: it resumes from the newest
    # last.ckpt written every step
    assert segs[0].get("ending") in ("sigterm", None) and [g.get("ending") for g in segs[1:]] == \
        ["sigusr1", "max_epochs"], segs
    assert segs[0]["resumed_from"] is None and all(g["resumed_from"] == str(last) for g in segs[1:]), segs
    first = segs[0].get("global_step") or 0
    assert first < segs[1]["global_step"] < STEPS, "each restart resumed and made progress"
    assert segs[1]["requeue"].startswith(f"requeued SLURM job {job} at"), segs[1]      # the run requeued its job
    assert segs[0].get("requeue") is None and segs[2].get("requeue") is None, segs
    assert _summary(whole)["global_step"] == STEPS and len(_summary(whole)["segments"]) == 1

    log = (repo / "experiments" / "slurm" / "logs" / f"ct-req-{job}.out").read_text()
    starts = re.findall(rf"=== .* job {job} start (\d) \(SLURM_RESTART_COUNT", log)
    assert starts == ["1", "2", "3"], f"the job log was not appended across restarts: starts {starts}"
    assert log.index("start 2") < log.index("stopped by SIGUSR1") < log.index("start 3") \
        < log.index("finished: trainer.max_epochs reached"), log[-3000:]
    if segs[0].get("ending") == "sigterm":
        assert log.index("terminated (SIGTERM)") < log.index("start 2"), log[-3000:]

    ref_rows, got_rows = metrics_history(whole), metrics_history(part)
    assert [r[:2] for r in got_rows] == [r[:2] for r in ref_rows]
    for a, b in zip(got_rows, ref_rows):
        assert [x is None for x in a[2:]] == [y is None for y in b[2:]], (a, b)
    # up to the first step trained after the first restart, rank 0's losses are equal bit for bit: the run
    # resumed the checkpoint's weights and data position, not a fresh start nor an older checkpoint
    assert [r for r in got_rows if r[0] <= first] == [r for r in ref_rows if r[0] <= first]
    off = [(a[0], x, y) for a, b in zip(got_rows, ref_rows) for x, y in zip(a[2:], b[2:])
           if x is not None and float(x) != pytest.approx(float(y), rel=1e-4)]
    if off:
        # Known bug (open, also tests/test_ddp.py): a resumed 2-rank gloo run drifts from the uninterrupted
        # one after its resume point; a resumed single-process run is exact (tests/test_resume.py)
        pytest.xfail(f"2-rank resume drifts after step {first}: (step, resumed, uninterrupted) {off[:4]}")
