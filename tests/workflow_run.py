"""Running Snakemake on a temporary copy of the workflow, for the workflow tests."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_workflow(dest: Path) -> Path:
    """A copy of everything the workflow needs (not results/, not .snakemake/)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "src", "profiles", "envs"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


_FAKEBIN = Path(tempfile.mkdtemp(prefix="csm-fakebin-"))
atexit.register(shutil.rmtree, _FAKEBIN, ignore_errors=True)  # one per test process, removed with it
(_FAKEBIN / "scontrol").write_text("#!/bin/sh\nexit 1\n")
(_FAKEBIN / "scontrol").chmod(0o755)


def fast_env(**extra: str) -> dict:
    """The environment for local Snakemake runs: with the SLURM executor plugin installed,
    Snakemake asks ``scontrol show config`` at start-up, which waits 10 s where SLURM's
    client is installed but no controller answers (here, once the SLURM test has stopped its
    cluster). A ``scontrol`` that fails at once comes first on PATH; local runs never need it."""
    return dict(os.environ, PATH=f"{_FAKEBIN}{os.pathsep}{os.environ['PATH']}", PYTHONUNBUFFERED="1",
                **extra)


def snakemake(cwd: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = fast_env()
    done = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def planned_jobs(cwd: Path, *args: str) -> dict[str, int]:
    """Rule -> number of jobs a dry run would execute (from Snakemake's own job table)."""
    out = snakemake(cwd, "-n", *args).stdout
    if "Nothing to be done" in out:
        return {}
    table = out[out.index("Job stats:"):]
    jobs = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        jobs[parts[0]] = int(parts[1])
    jobs.pop("total", None)
    return jobs
