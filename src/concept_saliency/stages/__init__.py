"""One function per workflow stage: paths and parameters in, versioned artifacts out.

The stage functions live in one module per rule (``demo`` and ``prepare``
hold two each), so that Snakemake, which is told which modules each rule uses,
reruns only the rules whose code changed. Each
``workflow/scripts/<stage>.py`` is one call: ``run_from_snakemake(snakemake, <stage>)``.
:func:`run_from_snakemake` passes the rule's named inputs, outputs and params
as keyword arguments, sends log records to the rule's log file, selects the
Keras backend from the config before anything imports Keras, and turns a
:class:`~concept_saliency.errors.UserError` into one clear line and exit
status 1 (no traceback). The stage functions can be called directly from
Python with the same arguments.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..artifacts import Provenance, atomic_path, disk_full_error, is_disk_full
from ..errors import DiskFullError, UserError

log = logging.getLogger("concept_saliency")


# ----------------------------------------------------------------- plumbing


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def run_stage(fn: Callable, *, log_file: str | None = None, backend: str = "tensorflow",
              threads: int | None = None, **kwargs) -> Any:
    """Run a stage with logging, backend selection and clear errors."""
    _setup_logging(log_file)
    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks
    try:
        from ..backend import use_backend

        use_backend(backend, threads)
        if threads and "threads" in inspect.signature(fn).parameters:
            kwargs["threads"] = threads  # stages that parallelise themselves (crop_pack)
        t0 = time.time()
        log.info("stage %s: start", fn.__name__)
        result = fn(**kwargs)
        log.info("stage %s: done in %.1fs", fn.__name__, time.time() - t0)
        return result
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


def _exit_after_disk_full(exc: DiskFullError) -> None:
    """Report and leave at once: after a write failed for lack of space, the HDF5 library may
    crash while the interpreter shuts down (a segmentation fault and a dump instead of the one
    line), so nothing more runs (no garbage collection, no exit handlers)."""
    log.error("%s", exc)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def run_from_snakemake(smk, fn: Callable) -> Any:
    """Call ``fn`` with the rule's named input, output and params as keyword arguments.

    The input ``code`` (library modules declared so that editing them reruns the
    rule) is not passed on.
    """
    kwargs: dict[str, Any] = {}
    for group in (smk.input, smk.output, smk.params):
        kwargs.update({k: v for k, v in group.items() if k != "code"})
    log_file = smk.log[0] if len(smk.log) else None
    return run_stage(fn, log_file=log_file, backend=smk.config.get("backend", "tensorflow"),
                     threads=smk.threads, **kwargs)


def write_table(df, path, prov: Provenance, fmt: str = "csm.table") -> None:
    """A TSV table for people, written atomically, with its provenance record."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    prov.write(path, fmt)


