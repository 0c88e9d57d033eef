"""Shared fixtures: the shared data folder, the demo run once per session, a seeded generator.
(Shared helpers are in helpers.py, imported like any module.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import shared_data  # noqa: E402 (after the backend is chosen)


@pytest.fixture
def data_dir() -> Path:
    path = shared_data()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set CSM_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The built-in demo (config/config.yaml, as `make demo` runs it) through Snakemake, once per
    session in a temporary copy of the workflow; tests may plan (-n) in it, and edit files only
    if they restore them."""
    from workflow_run import copy_workflow, snakemake

    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(work, "--cores", "2", timeout=1500)
    return work


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
