"""Where the workflow tests spend their time: Snakemake jobs per rule, from the runs' own logs.

After ``make test`` (or any pytest run), every Snakemake run the tests made left its log in
``<run>/.snakemake/log/`` under pytest's base temporary folder. This reads them all and prints,
per rule, the jobs run and their wall time (a job's start to its end, as Snakemake logged them:
jobs running side by side each count in full), and the share of the rules that load a Keras
model (each such job imports Keras and TensorFlow first, 10-15 s of one core here).

    python benchmarks/suite_jobs.py [/tmp/pytest-of-$USER/pytest-current]
"""

from __future__ import annotations

import argparse
import getpass
import re
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path

#: rules whose stage loads a Keras model (stages/*.py that import model or saliency)
KERAS_RULES = frozenset({"train", "encode", "saliency", "evaluate", "spatial_maps", "stability",
                         "import_encoder", "import_decoder"})

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_DONE = re.compile(r"^Finished jobid: (\d+)")


def job_times(log: Path) -> list[tuple[str, float]]:
    """(rule, wall seconds) of every job a Snakemake log saw finish."""
    stamp, rule, started, out = None, None, {}, []
    for line in log.read_text(errors="replace").splitlines():
        if m := _STAMP.match(line.strip()):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule:
            started[m.group(1)] = (rule, stamp)
            rule = None
        elif (m := _DONE.match(line)) and m.group(1) in started:
            name, start = started.pop(m.group(1))
            out.append((name, (stamp - start).total_seconds()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}" / "pytest-current"
    parser.add_argument("root", type=Path, nargs="?", default=default,
                        help="pytest's base temporary folder (default: the latest run's)")
    args = parser.parse_args()
    root = args.root.resolve()
    logs = sorted(root.glob("**/.snakemake/log/*.snakemake.log"))
    per_rule: dict[str, list[float]] = defaultdict(list)
    for log in logs:
        for rule, seconds in job_times(log):
            if rule != "all":
                per_rule[rule].append(seconds)
    total = sum(map(sum, per_rule.values()))
    print(f"{len(logs)} Snakemake logs under {root}")
    print(f"{'rule':<16} {'jobs':>5} {'wall s':>8} {'mean s':>7}")
    for rule, times in sorted(per_rule.items(), key=lambda kv: -sum(kv[1])):
        mark = " *" if rule in KERAS_RULES else ""
        print(f"{rule:<16} {len(times):>5} {sum(times):>8.0f} {sum(times) / len(times):>7.1f}{mark}")
    keras = [t for rule, times in per_rule.items() if rule in KERAS_RULES for t in times]
    print(f"* loads a Keras model: {len(keras)} of {sum(map(len, per_rule.values()))} jobs, "
          f"{sum(keras):.0f} of {total:.0f} s of job wall time ({sum(keras) / max(total, 1e-9):.0%})")


if __name__ == "__main__":
    main()
