"""Compare two results folders of the same config: samples, latents, concept vectors, saliency maps
and spatial maps equal to float tolerance (provenance, figures and timings may differ).

    python tests/compare_results.py results-before results-after [--rtol 1e-4 --atol 1e-5]

Used to show that a refactoring did not change the workflow's outputs (run the demo on both
commits, then compare). Exits 1 and lists every difference found; 0 when they agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """Every numeric or string dataset of an HDF5 file, by its path inside the file."""
    out: dict[str, np.ndarray] = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            out[name] = item[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def _same(a, b, rtol: float, atol: float) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(a, b))


def compare_h5(a: Path, b: Path, rtol: float, atol: float) -> list[str]:
    left, right = _arrays(a), _arrays(b)
    problems = [f"{a.name}: dataset '{k}' only in one of them" for k in sorted(set(left) ^ set(right))]
    for key in sorted(set(left) & set(right)):
        if not _same(left[key], right[key], rtol, atol):
            x, y = np.asarray(left[key]), np.asarray(right[key])
            detail = (f"max |diff| {np.nanmax(np.abs(x.astype(float) - y.astype(float))):.3g}"
                      if x.shape == y.shape and x.dtype.kind in "fiu" else f"{x.shape} vs {y.shape}")
            problems.append(f"{a}: dataset '{key}' differs ({detail})")
    return problems


def compare_h5ad(a: Path, b: Path, rtol: float, atol: float) -> list[str]:
    import anndata as ad

    x, y = ad.read_h5ad(a), ad.read_h5ad(b)
    problems = []
    if list(x.obs_names) != list(y.obs_names) or list(x.var_names) != list(y.var_names):
        return [f"{a}: spots or genes differ"]
    for key in sorted(set(x.obs.columns) | set(y.obs.columns)):
        if key not in x.obs or key not in y.obs:
            problems.append(f"{a}: obs column '{key}' only in one of them")
        elif x.obs[key].dtype.kind in "fiu" and not _same(x.obs[key], y.obs[key], rtol, atol):
            problems.append(f"{a}: obs column '{key}' differs")
    if not _same(np.asarray(x.X), np.asarray(y.X), rtol, atol):
        problems.append(f"{a}: X differs")
    return problems


def compare(before: Path, after: Path, rtol: float = 1e-4, atol: float = 1e-5) -> tuple[int, list[str]]:
    """(number of artifacts compared, differences)."""
    problems, n = [], 0
    names = ("samples.h5", "latents.h5", "concepts.h5", "grid.h5", "masks.h5")
    files = sorted(p.relative_to(before) for p in before.rglob("*")
                   if p.is_file() and (p.name in names or p.parent.name == "saliency"
                                       and p.suffix == ".h5" or p.suffix == ".h5ad"))
    for rel in files:
        other = after / rel
        if not other.exists():
            problems.append(f"{rel}: missing in {after}")
            continue
        n += 1
        if rel.suffix == ".h5ad":
            problems += compare_h5ad(before / rel, other, rtol, atol)
        else:
            problems += compare_h5(before / rel, other, rtol, atol)
    return n, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    n, problems = compare(args.before, args.after, args.rtol, args.atol)
    for p in problems:
        print(p)
    print(f"{n} artifacts compared, {len(problems)} difference(s)")
    return 1 if problems or not n else 0


if __name__ == "__main__":
    sys.exit(main())
