"""The SLURM profile on a real single-node cluster (munged, slurmctld, slurmd on this machine).

Starts the cluster with tests/slurm/start-slurm.sh (skipped, with the reason, where
that is impossible: not root, no apt, no daemons), runs a reduced demo through
``profiles/slurm`` and the same config locally, and checks that every job was a
SLURM job and that both runs produced the same artifacts. Stops only the
daemons this test started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REPO
from workflow_run import copy_workflow, planned_jobs, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]
SLURM_TOOLS = REPO / "tests" / "slurm"
STATE = Path(os.environ.get("SLURM_CI_ROOT", "/tmp/csm-test-slurm"))

REDUCED = {
    "threads": {"train": 1, "saliency": 1},
    "saliency": {"methods": {"vanilla_gradient": {}, "integrated_gradients": {"steps": 8}}},
    "datasets": {
        "shapes": {
            "type": "images",
            "source": {"synthetic_shapes": {"n_samples": 240}},
            "models": {"demo": {"preset": "demo-shapes", "epochs": 1, "batch_size": 32}},
            "concepts": {"attributes": ["red_square", "blue_disc"], "num_samples": 40},
            "explain": {"top_k": 2},
        },
    },
}


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("starting SLURM needs root (apt, munge, slurmd)")
    if shutil.which("apt-get") is None and shutil.which("sbatch") is None:
        pytest.skip("no apt-get to install SLURM and no sbatch on PATH")
    env = dict(os.environ, SLURM_CI_ROOT=str(STATE))
    started = subprocess.run(["bash", str(SLURM_TOOLS / "start-slurm.sh")], env=env,
                             capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        pytest.skip(f"SLURM could not be started here: {started.stderr.strip()[-500:]}")
    yield
    subprocess.run(["bash", str(SLURM_TOOLS / "stop-slurm.sh")], env=env, capture_output=True,
                   timeout=120)


def slurm_profile(dest: Path) -> Path:
    """profiles/slurm as shipped, with the edits a user makes for this one-node cluster."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile["slurm-status-command"] = "squeue"  # no accounting daemon here
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["seconds-between-status-checks"] = 2  # tiny jobs: poll often (default 10 s)
    profile["default-resources"].update(slurm_partition="main", mem_mb=1500, runtime=30)
    profile["set-threads"] = {"train": 1, "saliency": 1}
    for rule, res in profile["set-resources"].items():
        res.update(slurm_partition="main", mem_mb=1500, runtime=30, cpus_per_task=1)
        res.pop("gpu", None)
    profile["jobs"] = 2
    profile["cores"] = 2  # this node's CPUs: grouped figures run two at a time
    profile["retries"] = 0
    profile["latency-wait"] = 5
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile))
    return dest


def _run_with_timeout(cwd: Path, args: list[str], limit: int) -> subprocess.CompletedProcess:
    # a hung Snakemake ignores SIGTERM: interrupt it, then kill it
    cmd = ["timeout", "-s", "INT", "-k", "30", str(limit), sys.executable, "-m", "snakemake", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=limit + 60)


def test_demo_through_slurm_equals_a_local_run(cluster, tmp_path):
    local = copy_workflow(tmp_path / "local")
    (local / "config/config.yaml").write_text(yaml.safe_dump(REDUCED))
    remote = copy_workflow(tmp_path / "slurm")
    (remote / "config/config.yaml").write_text(yaml.safe_dump(REDUCED))
    profile = slurm_profile(tmp_path / "profile")

    expected = planned_jobs(remote)
    # the local run beside the SLURM one: Snakemake spends most of a SLURM run waiting for squeue
    with ThreadPoolExecutor(1) as pool:
        local_run = pool.submit(snakemake, local, "--cores", "2")
        done = _run_with_timeout(remote, ["--profile", str(profile), "--workflow-profile", "none"], 1200)
        local_run.result()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # every job but the local target rule 'all' ran as a SLURM job: one slurm log per job,
    # named by its SLURM job id, and each id submitted to and completed by slurmctld
    # (its own log: squeue forgets finished jobs after MinJobAge); the two figures ran as
    # one group job (group "render", 10 per job)
    logs = list((remote / ".snakemake" / "slurm_logs").rglob("*.log"))
    per_rule = {}
    for log in logs:
        rule = log.relative_to(remote / ".snakemake" / "slurm_logs").parts[0].removeprefix("rule_")
        per_rule[rule] = per_rule.get(rule, 0) + 1
    expected.pop("all")
    assert expected.pop("render") == 2
    expected["group_render_render"] = 1
    assert per_rule == expected
    job_ids = {log.stem for log in logs}
    assert all(j.isdigit() for j in job_ids)
    ctld = (STATE / "log" / "slurmctld.log").read_text()
    for job in job_ids:
        assert f"_slurm_rpc_submit_batch_job: JobId={job} " in ctld
        assert f"_job_complete: JobId={job} WEXITSTATUS 0" in ctld

    # the same artifacts as the local run
    for rel in ("shapes/demo/concepts/separation.tsv", "shapes/demo/evaluation/localisation.tsv",
                "shapes/demo/evaluation/summary.tsv"):
        a = pd.read_csv(local / "results" / rel, sep="\t")
        b = pd.read_csv(remote / "results" / rel, sep="\t")
        pd.testing.assert_frame_equal(a, b, rtol=1e-4)
    import h5py

    for rel in ("shapes/demo/latents.h5", "shapes/demo/saliency/integrated_gradients.h5"):
        with h5py.File(local / "results" / rel) as fa, h5py.File(remote / "results" / rel) as fb:
            key = "z" if "latents" in rel else "red_square/maps"
            np.testing.assert_allclose(fa[key][()], fb[key][()], rtol=1e-4, atol=1e-6)
