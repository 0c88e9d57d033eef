"""Shared fixtures: the shared data folder, the demo run once per session, a seeded generator;
and how the suite splits between pytest-xdist workers (`make test` runs two).
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


# --- Two workers (`make test` runs `pytest -n 2`): what goes where.
# The tests that share the demo run (a session fixture: one run per worker that needs it) go
# to one worker, every other file to one worker (module fixtures run a workflow once per
# worker), the files that run workflows first, the demo's first of all: the longest chains
# start at once and the quick files fill the gaps at the end. (pytest-xdist's own
# `--dist loadgroup` passes `xdist_group` marks through a node attribute pytest 9.2 no longer
# reads, so it does not group: pytest-dev/pytest-xdist#1386, open.)
DEMO_FILES = frozenset({"tests/test_workflow.py", "tests/test_examples.py", "tests/faults/test_reruns.py"})


def _test_file(nodeid: str) -> str:
    """The test file of a node id, as DEMO_FILES names it (node ids are relative to the rootdir)."""
    path = nodeid.split("::", 1)[0]
    return next((f for f in DEMO_FILES if path == f or path.endswith("/" + f)), path)


def pytest_collection_modifyitems(config, items):
    """The order the workers are handed the files in: the demo's, then those that run workflows
    (marked ``workflow`` or ``slurm``), then the rest, each in its own order. DEMO_FILES must
    name exactly the files whose tests use the demo run."""
    files = {_test_file(item.nodeid) for item in items}
    uses_demo = {_test_file(item.nodeid) for item in items if "demo" in item.fixturenames}
    wrong = sorted((uses_demo - DEMO_FILES) | ((files & DEMO_FILES) - uses_demo))
    if wrong:
        raise pytest.UsageError(f"{wrong[0]}: {'uses' if wrong[0] in uses_demo else 'does not use'} the "
                                f"demo run; correct DEMO_FILES in tests/conftest.py")
    slow = {_test_file(item.nodeid) for item in items
            if item.get_closest_marker("workflow") or item.get_closest_marker("slurm")}
    items.sort(key=lambda item: (_test_file(item.nodeid) not in DEMO_FILES, _test_file(item.nodeid) not in slow))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: known only where it is installed
def pytest_xdist_make_scheduler(config, log):
    """Under ``-n`` (``--dist load``, its default): whole files to a worker, the demo's files as
    one, handed out in collection order (above)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            config.option.loadscopereorder = False  # the collection order is the cost order

        def _split_scope(self, nodeid: str) -> str:
            path = _test_file(nodeid)
            return "demo" if path in DEMO_FILES else path

    return ByFile(config, log)
