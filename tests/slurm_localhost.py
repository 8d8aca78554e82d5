"""A real one-node SLURM on localhost for ``make test-slurm`` (tests/test_slurm.py): Debian's slurm-wlm
and munge (installed with apt-get when missing; needs root), a minimal ``slurm.conf`` in a scratch folder
(``proctrack/linuxproc``, ``task/none``: no cgroups), and munged, slurmctld and slurmd started in the
foreground by this process, so that :meth:`LocalSlurm.stop` ends exactly the daemons it started.

    with LocalSlurm(folder) as slurm:
        job = slurm.sbatch(["experiments/slurm/train-cpu.sbatch", ...], cwd=repo)
        slurm.wait_state(job, {"COMPLETED"})
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurm-wlm", "munge"]
TOOLS = ["sbatch", "scontrol", "squeue", "scancel", "sinfo", "srun", "slurmctld", "slurmd", "munged", "munge"]
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


class SlurmSetupError(RuntimeError):
    """The local SLURM could not be installed or started; the message says which step and why."""


def _which(tool: str) -> str | None:
    return shutil.which(tool) or next((p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if os.access(p, os.X_OK)),
                                      None)


def ensure_installed() -> None:
    """Install slurm-wlm and munge with apt-get when a tool is missing (root only)."""
    missing = [t for t in TOOLS if _which(t) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmSetupError(f"SLURM tools missing ({', '.join(missing)}) and not root: install them with "
                              f"`apt-get install {' '.join(PACKAGES)}` (Debian/Ubuntu) and rerun")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:     # stale package lists: refresh once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SlurmSetupError(f"`{' '.join(cmd)}` failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        return cred.returncode == 0 and subprocess.run(["unmunge"], input=cred.stdout, capture_output=True,
                                                       timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class LocalSlurm:
    """One node (this host, 127.0.0.1) with ``cpus`` CPUs in one partition ``debug``; state, spool, logs
    and ``slurm.conf`` under ``folder``. Commands run with ``SLURM_CONF`` pointing at that file."""

    def __init__(self, folder: Path, cpus: int = 2, port: int = 16817) -> None:
        self.folder = Path(folder)
        self.cpus = cpus
        self.port = port
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.folder / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.jobs: list[str] = []

    # -- environment -----------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(list(cmd), env=kw.pop("env", self.env), capture_output=True, text=True, timeout=120, **kw)
        if check and r.returncode != 0:
            raise SlurmSetupError(f"`{' '.join(cmd)}` failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
        return r

    # -- start / stop ----------------------------------------------------------------------------------
    def write_conf(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        f = self.folder
        self.conf.write_text("\n".join([
            "ClusterName=corrtrack-local",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={self.port}", f"SlurmdPort={self.port + 1}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill", "SlurmdParameters=config_overrides",
            "ReturnToService=2", "JobRequeue=1", "KillWait=120", "MinJobAge=3600",  # slow shared CPUs
            f"StateSaveLocation={f / 'state'}", f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}", f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")

    def _start(self, name: str, cmd: list[str], **kw) -> None:
        log = open(self.folder / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, **kw)

    def start(self, timeout: float = 90) -> None:
        ensure_installed()
        self.write_conf()
        if not _munge_works():
            run_dir = MUNGE_SOCKET.parent
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(run_dir, "munge", "munge")
            self._start("munged", [_which("munged"), "--foreground"], user="munge", group="munge")
            self._wait(lambda: _munge_works(), 20, "munged answers (munge -n | unmunge)")
        self._start("slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait(lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout, "slurmctld answers")
        self._start("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(lambda: "idle" in self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout, timeout,
                   f"node {self.node} is idle")

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.time() + timeout
        while time.time() < end:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise SlurmSetupError(f"{', '.join(dead)} exited while waiting until {what}; logs: "
                                      f"{self.folder / 'log'}")
            if ready():
                return
            time.sleep(0.5)
        raise SlurmSetupError(f"timed out after {timeout:.0f} s waiting until {what}; logs: {self.folder / 'log'}")

    def stop(self) -> None:
        """Cancel the jobs this object submitted, then end the daemons it started (slurmd, slurmctld, munged)."""
        if self.jobs and "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", *self.jobs, check=False)
            end = time.time() + 60
            while time.time() < end and self.run("squeue", "-h", "-j", ",".join(self.jobs), check=False).stdout.strip():
                time.sleep(1)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)

    def __enter__(self) -> "LocalSlurm":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- jobs ------------------------------------------------------------------------------------------
    def sbatch(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
        r = self.run("sbatch", "--parsable", *args, cwd=cwd, env={**self.env, **(env or {})})
        job = r.stdout.strip().split(";")[0]
        self.jobs.append(job)
        return job

    def job(self, job: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ...); empty when SLURM no longer knows it."""
        r = self.run("scontrol", "show", "job", "-o", job, check=False)
        out = {}
        for item in r.stdout.split():
            k, sep, v = item.partition("=")
            if sep:
                out.setdefault(k, v)
        return out

    def wait_state(self, job: str, states: set[str], timeout: float, what: str = "") -> dict[str, str]:
        end = time.time() + timeout
        info: dict[str, str] = {}
        while time.time() < end:
            info = self.job(job)
            if info.get("JobState") in states:
                return info
            if info.get("JobState") in {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"} - states:
                break
            time.sleep(1)
        raise AssertionError(f"job {job} {what or ''}: state {info.get('JobState')} ({info.get('Reason')}), "
                             f"expected {sorted(states)}")
