"""Faults through real ``snakemake`` runs of the workflow: bad inputs stop it with the one-line
message in its output and no traceback wall; config values never reach a shell.

Each run gets a ``scontrol`` that fails at once on PATH: the SLURM executor plugin asks
``scontrol show config`` when Snakemake starts, which takes 10 s where SLURM is installed but
no controller answers (as here); nothing of the workflow depends on it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_run import copy_workflow, fast_env

from helpers import assert_no_partial_artifacts

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def smk(work: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=work, text=True, capture_output=True, timeout=timeout,
                          env=fast_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""))


def assert_clear_failure(done: subprocess.CompletedProcess, *messages: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    for message in messages:
        assert message in out, f"{message!r} not in:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-5000:]


@pytest.fixture
def work(tmp_path):
    return copy_workflow(tmp_path / "wf")


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "config key '(top level)': unknown key(s) 'colour'"),
    ({"datasets": {"shapes": {"models": {"demo": {"epochs": 0}}}}},
     "config key 'datasets.shapes.models.demo.epochs': 0 is less than the minimum of 1"),
    ({"datasets": {"shapes": {"concepts": {"attributes": ["Smilling"]}}}},
     "config key 'datasets.shapes.concepts.attributes': unknown attribute(s) Smilling"),
])
def test_a_bad_config_stops_snakemake_before_any_job(work, change, message):
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())

    def merge(into, new):
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = v

    merge(config, change)
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    done = smk(work, "--cores", "1", "--configfile", "config/bad.yaml")
    assert_clear_failure(done, message)
    assert not (work / "results").exists()


def test_a_key_given_twice_in_a_config_file_stops_snakemake_before_any_job(work):
    text = (work / "config" / "config.yaml").read_text()
    assert "\nseed: 0\n" in text
    (work / "config" / "twice.yaml").write_text(text.replace("\nseed: 0\n", "\nseed: 0\nseed: 1\n"))
    done = smk(work, "-n", "--configfile", "config/twice.yaml")
    assert_clear_failure(done, "config/twice.yaml: line", "key 'seed' is given twice")
    assert not (work / "results").exists()


HOSTILE_RESULTS = "res; touch PWNED $(touch PWNED2) `touch PWNED3` | touch PWNED4"


def test_bad_inputs_stop_their_jobs_with_one_line_and_shell_text_in_config_is_data(work, tmp_path,
                                                                                   data_dir):
    """One run, --keep-going: a count matrix with a duplicate spot, a corrupt user encoder. The
    results folder's name is a shell command: it must be a folder name and nothing else."""
    import pandas as pd

    df = pd.read_csv(data_dir / "mob" / "Rep11_MOB_count_matrix-1.tsv.gz", sep="\t", index_col=0)
    df = df[df.sum().sort_values(ascending=False).index[:40]]
    counts = tmp_path / "bad counts; rm -rf ~.tsv"  # a hostile file name, too
    df.iloc[[0, 1, 2, 1, 3]].to_csv(counts, sep="\t")
    encoder = tmp_path / "enc.keras"
    encoder.write_bytes(b"PK\x03\x04 not really a zip")
    config = {
        "results": HOSTILE_RESULTS,
        "saliency": {"methods": {"vanilla_gradient": {}}},
        "datasets": {
            "mob": {"type": "spatial", "source": {"st_counts": {"counts": str(counts)}},
                    "models": {"m": {"preset": "paper-mob", "epochs": 1, "batch_size": 8}},
                    "concepts": {"seed_genes": {"penk": "Penk"}}},
            "shapes": {"type": "images",
                       "source": {"synthetic_shapes": {"n_samples": 40, "image_size": 16}},
                       "image_size": 16, "models": {"mine": {"keras_file": str(encoder)}},
                       "concepts": {"attributes": "all", "num_samples": 5}},
        },
    }
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    targets = [f"{HOSTILE_RESULTS}/mob/data/samples.h5",
               f"{HOSTILE_RESULTS}/shapes/mine/model/imported.keras"]
    done = smk(work, *targets, "--cores", "2", "--keep-going", "--configfile", "config/bad.yaml")
    assert_clear_failure(done, f"{counts}: spot '{df.index[1]}' appears twice (lines 3 and 5)",
                         f"{encoder}: not a valid .keras file")
    results = work / HOSTILE_RESULTS
    assert (results / "shapes" / "data" / "samples.h5").exists()  # the folder is the literal name
    assert not (results / "mob" / "data" / "samples.h5").exists()
    assert not (results / "shapes" / "mine" / "model" / "imported.keras").exists()
    pwned = [p for p in (work, tmp_path, Path.cwd(), Path.home()) for n in range(5)
             if (p / ("PWNED" + (str(n) if n else ""))).exists()]
    assert not pwned, pwned
    # the log of each failed job holds the same one line
    log = (results / "mob" / "logs" / "prepare.log").read_text()
    assert "appears twice" in log and "Traceback" not in log
    assert_no_partial_artifacts(results)


def test_a_missing_he_image_is_named_before_any_job_runs(work, tmp_path, data_dir):
    (tmp_path / "align.txt").write_text("290 0 0 0 291.5 0 -290 -291 1\n")
    config = {
        "saliency": {"methods": {"vanilla_gradient": {}}},
        "datasets": {"mob": {
            "type": "spatial",
            "source": {"st_counts": {"counts": str(data_dir / "mob" / "Rep11_MOB_count_matrix-1.tsv.gz"),
                                     "transformation": str(tmp_path / "align.txt"),
                                     "image": str(tmp_path / "HE_Rep11.jpg")}},
            "models": {"m": {"preset": "paper-mob", "epochs": 1, "batch_size": 8}},
            "concepts": {"seed_genes": {"penk": "Penk"}}}},
    }
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    done = smk(work, "--cores", "1", "--configfile", "config/bad.yaml")
    assert_clear_failure(done, str(tmp_path / "HE_Rep11.jpg"))
    assert "Missing input" in done.stdout + done.stderr or "does not exist" in done.stdout + done.stderr
    assert not (work / "results").exists()
