"""Every change reruns what depends on it, and nothing is resumed or skipped wrongly: real
Snakemake runs, asserting what it plans (``-n``) and what it runs.

- every output the config asks for is a target of ``rule all`` (a results folder without
  Snakemake's metadata, given a new saliency method, runs it);
- each rule's code inputs are the import closure of its stage, checked against the modules
  every stage really loaded (recorded in provenance), and editing a module reruns exactly
  the stages that use it.

(Training resumed only from a checkpoint of the same data and settings:
``test_interruptions.py::test_a_checkpoint_made_on_other_data_is_not_resumed``.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from workflow_run import copy_workflow, planned_jobs, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.faults]


def dry_run_jobs(work: Path, *args: str) -> list[dict]:
    """Every job of ``snakemake -n`` as ``{"rule", "input", "output"}`` (lists of paths)."""
    out = snakemake(work, "-n", *args).stdout
    jobs, job = [], None
    for line in out.splitlines():
        head = re.match(r"^\s*(?:local)?rule (\w+):$", line)  # grouped jobs are indented more
        if head:
            job = {"rule": head.group(1), "input": [], "output": []}
            jobs.append(job)
        elif job is not None and re.match(r"^\s+(input|output): ", line):
            key, _, value = line.strip().partition(": ")
            job[key] = value.split(", ")
    return jobs


def test_every_output_of_every_planned_job_is_a_target_of_rule_all(tmp_path):
    """So a missing or outdated artifact is rebuilt even where Snakemake has no metadata."""
    work = copy_workflow(tmp_path / "wf")
    jobs = dry_run_jobs(work)
    targets = set(next(j for j in jobs if j["rule"] == "all")["input"])
    outputs = {f for j in jobs if j["rule"] != "all" for f in j["output"]}
    assert outputs and outputs <= targets, sorted(outputs - targets)
    assert {j["rule"] for j in jobs} >= {"saliency", "plot_loss", "evaluate", "render"}


def test_a_new_method_runs_in_a_results_folder_without_metadata(demo, tmp_path):
    """A copied results folder (no .snakemake) plus a new method in the config: the method's maps
    are planned and made, nothing else is recomputed but what reads every method's maps."""
    work = tmp_path / "copy"
    shutil.copytree(demo, work, ignore=shutil.ignore_patterns(".snakemake"))
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    config["saliency"]["methods"]["deconvnet"] = {}
    (work / "config/new.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "config/new.yaml")
    assert jobs.get("saliency") == 2, jobs
    assert not {"train", "encode", "concepts", "prepare_images", "prepare_spatial"} & set(jobs), jobs
    snakemake(work, "--cores", "2", "--configfile", "config/new.yaml", "--until", "saliency",
              timeout=900)
    for ds in ("shapes", "tissue"):
        assert (work / f"results/{ds}/demo/saliency/deconvnet.h5.prov.json").is_file()


def _module(path: str) -> str:
    """``/.../src/concept_saliency/data/__init__.py`` -> ``concept_saliency.data``."""
    rel = path.split("/src/", 1)[1].removesuffix(".py")
    return ".".join(p for p in rel.split("/") if p != "__init__")


def test_every_stage_declares_the_modules_it_ran(demo):
    """The modules a stage really loaded (its provenance record) are among its rule's code inputs:
    the derived closure cannot miss a module, whatever the stage imports and where."""
    checked = 0
    for job in dry_run_jobs(demo, "--forceall"):
        if job["rule"] == "all":
            continue
        declared = {_module(f) for f in job["input"] if "/src/concept_saliency/" in f}
        for output in job["output"]:
            record = demo / f"{output}.prov.json"
            if not record.is_file():
                continue
            ran = set(json.loads(record.read_text())["package"]["modules"])
            assert ran, output
            assert ran <= declared, (job["rule"], sorted(ran - declared))
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize("module, reruns, keeps", [
    # the modules the hand-kept lists had missed
    ("saliency/strided_conv.py", {"saliency", "evaluate"}, {"train", "encode", "concepts"}),
    ("data/samples.py", {"encode", "train", "prepare_images", "prepare_spatial"}, set()),
    ("encoding.py", {"encode", "concepts", "spatial_maps"}, {"train", "prepare_images"}),
    ("data/spatial.py", {"prepare_spatial", "concepts"}, {"prepare_images"}),
    # figure code never retrains a model
    ("plotting.py", {"plot_loss", "plot_scores", "render"}, {"train", "encode", "concepts"}),
])
def test_editing_a_module_reruns_exactly_the_stages_that_use_it(demo, module, reruns, keeps):
    path = demo / "src" / "concept_saliency" / module
    original = path.read_text()
    stat = path.stat()
    try:
        path.write_text(original + "\n# edited\n")
        jobs = planned_jobs(demo)
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert reruns <= set(jobs), (module, jobs)
    assert not keeps & set(jobs), (module, jobs)
    assert planned_jobs(demo) == {}
