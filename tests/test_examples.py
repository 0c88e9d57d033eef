"""The notebooks in examples/, executed as a user runs them (a Jupyter kernel), and kept in git
without outputs."""

from __future__ import annotations

import json
import os

import pytest

from helpers import REPO

NOTEBOOKS = sorted((REPO / "examples").glob("*.ipynb"))


def execute(path, env: dict[str, str] | None = None, timeout: int = 600):
    """Runs every cell of the notebook at ``path`` in a fresh kernel started in its folder;
    returns the executed notebook (a cell's error fails with its traceback)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:  # the kernel inherits this process's environment
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []))


def test_the_notebooks_are_in_git_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["spatial_results_in_scanpy.ipynb", "your_own_vae.ipynb"]
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def test_your_own_vae_notebook_runs_and_draws_its_maps():
    nb = execute(REPO / "examples" / "your_own_vae.ipynb", {"KERAS_BACKEND": "tensorflow"})
    text = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []))
    auroc = float(text.split("AUROC of the concept score: ")[1].split()[0])
    assert auroc > 0.9, text  # the trained VAE's concept separates the scenes
    assert images(nb) >= 3  # three methods' maps, their overlays, one blended map


@pytest.mark.workflow
def test_spatial_results_notebook_reads_the_workflows_maps(demo):
    nb = execute(REPO / "examples" / "spatial_results_in_scanpy.ipynb",
                 {"CSM_RESULTS": str(demo / "results")})
    assert images(nb) >= 3  # two library figures, scanpy's spatial plot
    columns = "".join(out["data"].get("text/plain", "") for out in nb.cells[2].outputs if "data" in out)
    assert "csm_layer1_integrated_gradients" in columns
