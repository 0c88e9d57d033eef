"""The workflow's own hygiene: Snakemake's linter, snakefmt, and a DAG of the paper's
full CelebA fan-out that builds fast and packs into few cluster jobs."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_run import fast_env

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ALL_METHODS = ["vanilla_gradient", "gradient_x_input", "smoothgrad", "integrated_gradients",
               "guided_backprop", "deconvnet", "rectgrad", "epsilon_lrp", "deeplift", "occlusion"]


def _run(*args, cwd=REPO):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=fast_env())


def test_snakemake_lint_is_clean():
    done = _run(BIN / "snakemake", "--lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Lints for" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_snakefmt_check_passes():
    done = _run(BIN / "snakefmt", "--check", "Snakefile", "workflow/rules")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def celeba_all_methods(tmp_path_factory) -> Path:
    """config/celeba.yaml (all 40 attributes, downloads) with all ten saliency methods."""
    config = yaml.safe_load((REPO / "config" / "celeba.yaml").read_text())
    config["saliency"]["methods"] = {m: {} for m in ALL_METHODS}
    path = tmp_path_factory.mktemp("celeba") / "celeba-all.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _jobs(stdout: str) -> dict:
    stats = stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    return {ln.split()[0]: int(ln.split()[1]) for ln in stats.splitlines()[3:] if ln.strip()}


def _cpu_seconds(*args) -> tuple[float, subprocess.CompletedProcess]:
    """CPU seconds of a whole child process, interpreter start-up included (wall time on a
    shared 2-core machine swings with other jobs' load; CPU time does not)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = _run(*args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def test_the_paper_celeba_dag_builds_in_a_few_snakemake_start_ups(celeba_all_methods, tmp_path):
    # In units of Snakemake's own start-up (`snakemake --version`, the faster of two), measured
    # here: seconds differ twofold between the machines this runs on (a 5 s limit failed on a
    # slow day with code that had passed it), the ratio does not. The DAG of 40 attributes x
    # 10 methods took 2.5-3.1 start-ups (6 s of CPU on a machine where one start-up took 2-2.6 s).
    start_up = min(_cpu_seconds(BIN / "snakemake", "--version")[0] for _ in range(2))
    cpu, done = _cpu_seconds(BIN / "snakemake", "-n", "--configfile", celeba_all_methods, "--directory",
                             tmp_path, "--snakefile", REPO / "Snakefile")
    jobs = _jobs(done.stdout)
    assert jobs["render"] == 40 and jobs["saliency"] == 10, jobs
    assert cpu < 4.0 * start_up, (cpu, start_up)


def test_slurm_profile_packs_the_fan_out_into_a_few_dozen_cluster_jobs(celeba_all_methods, tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    done = _run(BIN / "snakemake", "-n", "--profile", REPO / "profiles" / "slurm", "--configfile",
                celeba_all_methods, "--directory", tmp_path, "--snakefile", REPO / "Snakefile")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    jobs = _jobs(done.stdout)
    render_groups = done.stdout.count("Group job render")
    assert render_groups == 4, render_groups  # 40 figures, 10 per cluster job
    cluster_jobs = sum(jobs.values()) - jobs["render"] + render_groups - jobs["all"]  # 'all' is local
    assert cluster_jobs <= 30, (cluster_jobs, jobs)


def test_the_conda_environments_pin_what_the_tests_run_with():
    """envs/*.yaml (one per backend; the rules pick by the config's backend) pin the versions of
    constraints.txt; the JAX one has JAX instead of TensorFlow."""
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {k.lower(): v for k, v in pins.items()}
    for name, backend, absent in (("concept-saliency.yaml", "tensorflow-cpu", "jax"),
                                  ("concept-saliency-jax.yaml", "jax", "tensorflow-cpu")):
        env = yaml.safe_load((REPO / "envs" / name).read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        listed = dict(p.lower().split("==") for p in pip)
        assert backend in listed and absent not in listed, name
        assert {k: v for k, v in listed.items() if k in pins} == {k: pins[k] for k in listed if k in pins}
        assert set(listed) - set(pins) == set(), (name, set(listed) - set(pins))
    import re

    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    envs = re.findall(r"conda:\n\s+(\S+)", rules)
    assert len(envs) >= 15 and set(envs) == {"CONDA_ENV"}, envs


def test_a_config_value_on_the_command_line_merges_into_the_config(tmp_path):
    """`--config key=value` changes one key of the config in use (the demo here); it does not
    replace the whole config."""
    from workflow_run import copy_workflow, planned_jobs, snakemake

    work = copy_workflow(tmp_path / "wf")
    jobs = planned_jobs(work, "--config", "backend=jax")
    assert jobs.get("generate_shapes") == 1 and jobs.get("generate_tissue") == 1, jobs
    # the key given takes effect, the rest of the demo's config stays
    planned = snakemake(work, "-n", "--config", "results=elsewhere").stdout
    assert "elsewhere/shapes/demo/model/vae.keras" in planned
    assert "elsewhere/tissue/demo/maps.h5ad" in planned and "results/shapes" not in planned
