"""How far a long computation is.

Workflow stages log ``<what> <done>/<total> (<pct>) <rate> <unit>/s ETA <t>`` at most every
``every`` seconds (:class:`Progress`; always the last one), so a log file followed with
``tail -f`` shows how far a job is without flooding Snakemake's own output. Library calls
made from a notebook or a terminal take ``progress=True`` and show a bar
(:func:`progress_bar`).
"""

from __future__ import annotations

import contextlib
import logging
import time

log = logging.getLogger("concept_saliency")


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, what: str, unit: str = "it", enabled: bool = True):
    """A progress bar for long library calls (``progress=True``): tqdm's, which is a widget in
    Jupyter and a text bar in a terminal; nothing when ``enabled`` is false. Yields an object
    with ``update(n)``."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=what, unit=unit) as bar:
        yield bar


class Progress:
    """Counts work done out of ``total`` and logs rate and ETA at most every ``every`` s."""

    def __init__(self, what: str, total: int, unit: str = "items", every: float = 30.0,
                 logger: logging.Logger = log, clock=time.monotonic):
        self.what, self.total, self.unit, self.every = what, int(total), unit, every
        self.log, self.clock = logger, clock
        self.done = 0
        self.start = self.last = clock()

    @property
    def rate(self) -> float:
        return self.done / max(self.clock() - self.start, 1e-9)

    def line(self) -> str:
        rate = self.rate
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = format_duration(eta) if eta != float("inf") else "?"
        return (f"{self.what} {self.done}/{self.total} ({pct:.0f}%) {rate:.1f} {self.unit}/s "
                f"ETA {eta_text}")

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.done >= self.total or now - self.last >= self.every:
            self.last = now
            self.log.info(self.line())
