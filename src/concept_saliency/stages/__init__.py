"""The workflow's stages: one module per rule, each with one function of the same name.

A stage function takes the rule's named inputs, outputs and params (and the wildcards it
asks for, e.g. ``concept``) as keyword arguments, reads its inputs, computes and writes
its outputs; it may return a dict of facts for the provenance records (``{"summary":
...}``). Everything the stages share is done here, by the runner:

- the Keras backend (and the CPU threads) is chosen before the stage module is imported,
  so stage modules import Keras-dependent modules at the top like any module;
- the stage module ``concept_saliency.stages.<name>`` is imported by name and its
  function ``<name>`` called;
- the provenance record of every output is written once the stage returns, with the
  format :data:`OUTPUT_FORMATS` gives the output's name;
- (:func:`run_job`, :func:`run_from_snakemake`) log records go to the rule's log file, and a
  :class:`~concept_saliency.errors.UserError` ends the job with one line and exit status 1.

A new stage is a module here, a rule, a one-line script in ``workflow/scripts/`` and, for
an output name not yet in :data:`OUTPUT_FORMATS`, one line there.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from ..artifacts import FORMATS, Provenance, disk_full_error, is_disk_full
from ..errors import DiskFullError, UserError

log = logging.getLogger("concept_saliency")

#: the format of each output, by its name in the rules (an output name means one kind of file)
OUTPUT_FORMATS: dict[str, str] = {
    # the demo's raw data
    "images": "csm.image-folder", "attributes": "csm.table", "masks": "csm.masks",
    "counts": "csm.count-matrix", "annotation": "csm.table",
    # inputs fetched, and the sample store
    "file": "csm.download", "samples": "csm.samples", "regions": "csm.regions", "report": "csm.report",
    "anndata": "csm.anndata", "grid": "csm.spatial-grid",
    # model, latents, concepts, maps
    "vae": "csm.keras-model", "encoder": "csm.keras-model", "decoder": "csm.keras-model",
    "history": "csm.history",
    "latents": "csm.latents", "concepts": "csm.concepts", "maps": "csm.saliency",
    "spatial_maps": "csm.spatial-maps", "consensus_maps": "csm.consensus-maps",
    # tables and figures for people
    "separation": "csm.table", "groups": "csm.table", "summary": "csm.table",
    "randomisation": "csm.table", "curves": "csm.table", "table": "csm.table",
    "per_sample": "csm.table", "figure": "csm.figure",
}
assert set(OUTPUT_FORMATS.values()) <= set(FORMATS)


def stage_function(name: str):
    """The function ``name`` of module ``concept_saliency.stages.<name>`` (imported now)."""
    return getattr(importlib.import_module(f"{__name__}.{name}"), name)


def run_stage(name: str, *, inputs: Mapping[str, Any] | None = None,
              outputs: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
              wildcards: Mapping[str, str] | None = None, backend: str = "tensorflow",
              threads: int | None = None) -> dict:
    """Run stage ``name`` and write the provenance record of each of its ``outputs``.

    ``inputs``, ``outputs`` and ``params`` are passed as keyword arguments, with the
    ``wildcards`` the stage function takes, and ``threads`` where it takes them (stages
    that parallelise themselves). Returns the stage's facts for provenance. Raises
    what the stage raises (a :class:`~concept_saliency.errors.UserError` for bad input).
    """
    from ..backend import use_backend

    inputs, outputs, params = dict(inputs or {}), dict(outputs or {}), dict(params or {})
    unknown = [k for k in outputs if k not in OUTPUT_FORMATS]
    if unknown:
        raise ValueError(f"stage {name}: no format for output(s) {', '.join(unknown)}; add them "
                         f"to OUTPUT_FORMATS")
    use_backend(backend, threads)
    fn = stage_function(name)
    accepted = inspect.signature(fn).parameters
    extra = {k: v for k, v in (wildcards or {}).items() if k in accepted}
    if threads and "threads" in accepted:
        extra["threads"] = threads
    prov = Provenance(name, params, inputs)
    t0 = time.time()
    log.info("stage %s: start", name)
    facts = fn(**inputs, **outputs, **params, **extra) or {}
    prov.extra.update(facts)
    for key, path in outputs.items():
        if not Path(path).exists():
            raise RuntimeError(f"stage {name} did not write its output {key} ({path})")
        prov.write(path, OUTPUT_FORMATS[key])
    log.info("stage %s: done in %.1fs", name, time.time() - t0)
    return facts


def run_job(name: str, *, log_file: str | None = None, **kwargs) -> dict:
    """:func:`run_stage` as a job: log records to ``log_file`` (and stderr), a
    :class:`~concept_saliency.errors.UserError` as one line and exit status 1, a full disk
    as one line and an immediate exit."""
    _setup_logging(log_file)
    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks
    try:
        return run_stage(name, **kwargs)
    except DiskFullError as exc:
        _exit_after_disk_full(exc)
    except UserError as exc:
        log.error("%s", exc)
        sys.stderr.flush()
        raise SystemExit(1) from None
    except (OSError, RuntimeError) as exc:
        if not is_disk_full(exc):
            raise
        _exit_after_disk_full(disk_full_error(getattr(exc, "filename", None) or log_file or "."))


def run_from_snakemake(smk, name: str) -> dict:
    """The job of rule ``name`` (``workflow/scripts/<name>.py``): its named inputs (but ``code``,
    the library modules declared so that editing them reruns the rule), outputs, params and
    wildcards, its log file, threads and the config's backend."""
    return run_job(
        name, log_file=smk.log[0] if len(smk.log) else None,
        inputs={k: v for k, v in smk.input.items() if k != "code"},
        outputs=dict(smk.output.items()), params=dict(smk.params.items()),
        wildcards=dict(smk.wildcards.items()), backend=smk.config.get("backend", "tensorflow"),
        threads=smk.threads)


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def _exit_after_disk_full(exc: DiskFullError) -> None:
    """Report and leave at once: after a write failed for lack of space, the HDF5 library may
    crash while the interpreter shuts down (a segmentation fault and a dump instead of the one
    line), so nothing more runs (no garbage collection, no exit handlers)."""
    log.error("%s", exc)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
