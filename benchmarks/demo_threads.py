"""The demo (config/config.yaml) with 2 threads per saliency and evaluate job, then with 1.

Each of the demo's 14 saliency jobs does 1-3 s of work after 10-15 s of importing
TensorFlow, which uses one core; with 2 threads per job, Snakemake on 2 cores runs them one at
a time. Runs both settings one after the other on copies of the workflow (nothing else should
run meanwhile), prints wall and CPU time and their ratio, and checks that the maps agree.

    python benchmarks/demo_threads.py [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PARTS = ("Snakefile", "workflow", "config", "src", "profiles", "envs")


def copy_workflow(dest: Path, saliency_threads: int) -> Path:
    dest.mkdir(parents=True)
    for name in PARTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    config_path = dest / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("threads", {})["saliency"] = saliency_threads
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def run(work: Path, cores: int) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of Snakemake and its jobs) of one demo run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(work / "src"))
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores)], cwd=work, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def largest_map_difference(a: Path, b: Path) -> float:
    """The largest difference between the two runs' maps, relative to each map's largest value."""
    worst = 0.0
    for path in sorted(a.glob("results/*/*/saliency/*.h5")):
        with h5py.File(path) as fa, h5py.File(b / path.relative_to(a)) as fb:
            for concept in (k for k in fa if isinstance(fa[k], h5py.Group) and "maps" in fa[k]):
                x, y = fa[concept]["maps"][()], fb[concept]["maps"][()]
                worst = max(worst, float(np.abs(x - y).max() / (np.abs(x).max() + 1e-30)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="csm-demo-threads-"))
    results = {}
    for threads in (2, 1):
        work = copy_workflow(root / f"threads{threads}", threads)
        results[threads] = run(work, args.cores)
        print(f"saliency threads {threads}: wall {results[threads][0]:.0f} s, CPU {results[threads][1]:.0f} s",
              flush=True)
    (w2, c2), (w1, c1) = results[2], results[1]
    print(f"1 thread / 2 threads: wall {w1 / w2:.2f}x, CPU {c1 / c2:.2f}x; largest relative map difference "
          f"{largest_map_difference(root / 'threads2', root / 'threads1'):.1e}")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
