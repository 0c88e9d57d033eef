"""Check that the package's dependencies resolve on the platforms and Pythons its users have.

pip evaluates environment markers only for the machine it runs on; ``uv pip compile`` resolves
for another platform and Python (``--python-platform``, ``--python-version``) from PyPI,
without installing anything. For each platform x Python x set of extras this prints whether
it resolves and which Keras backend it gets, and exits 1 if a combination that must work
does not.

    python tools/resolve_platforms.py            # or: make platforms (needs uv: pip install uv)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = {"linux x86_64": "x86_64-manylinux_2_28", "linux aarch64": "aarch64-manylinux_2_28",
             "macOS arm64": "aarch64-apple-darwin", "macOS x86_64": "x86_64-apple-darwin"}
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
#: extras -> the platforms and Pythons on which they must resolve with a backend
MUST = {
    "tensorflow,workflow": ({"linux x86_64", "linux aarch64", "macOS arm64"}, {"3.11", "3.12", "3.13"}),
    "jax,workflow": ({"linux x86_64", "linux aarch64", "macOS arm64"}, {"3.11", "3.12", "3.13", "3.14"}),
    "tensorflow": ({"linux x86_64", "linux aarch64", "macOS arm64"}, {"3.11", "3.12", "3.13"}),
    "(core)": (set(PLATFORMS), set(PYTHONS)),
}
BACKENDS = ("tensorflow-cpu", "tensorflow", "jax")


def resolve(uv: str, extras: str, platform: str, python: str) -> tuple[bool, str]:
    """(resolved, backend or the first line of uv's reason)."""
    cmd = [uv, "pip", "compile", str(ROOT / "pyproject.toml"), "--python-platform", platform,
           "--python-version", python, "--quiet", "--no-header", "--no-annotate"]
    for extra in ([] if extras == "(core)" else extras.split(",")):
        cmd += ["--extra", extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        reason = next((line.strip() for line in done.stderr.splitlines() if "hint" in line or "No solution" in line),
                      done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no solution")
        return False, reason[:150]
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", done.stdout, re.M))
    found = [f"{b} {pins[b]}" for b in BACKENDS if b in pins]
    return True, ", ".join(found) or "no backend"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="*", default=list(MUST), help="extras sets to check")
    parser.add_argument("--python", nargs="*", default=list(PYTHONS))
    args = parser.parse_args(argv)
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        print("uv is needed: pip install uv", file=sys.stderr)
        return 2
    failures = 0
    print(f"{'extras':<22} {'platform':<14} {'python':<6} result")
    for extras in args.extras:
        for name, platform in PLATFORMS.items():
            for python in args.python:
                ok, what = resolve(uv, extras, platform, python)
                platforms, pythons = MUST.get(extras, (set(), set()))
                must = name in platforms and python in pythons
                bad = must and (not ok or (extras != "(core)" and what == "no backend"))
                failures += bad
                mark = "FAIL" if bad else ("ok" if ok else "--")
                print(f"{extras:<22} {name:<14} {python:<6} {mark:<4} {what}")
    print(f"{failures} required combination(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
