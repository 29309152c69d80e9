"""How long the process backend takes to make a project's environment, and to reuse it.

Scaffolds the default project (plus ``--add`` requirements) in a temporary directory with
an empty environment cache, then times ``byoc local train --backend process`` runs: the
first builds the environment, the others reuse it. Prints each run's wall time, the build
time byoc reported, and the median of several environment reuse checks.

    python benchmarks/envs.py --add pandas --runs 3            # uv's download cache kept
    python benchmarks/envs.py --add pandas --cold-uv-cache     # uv downloads everything too
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from byoc import scaffold
from byoc.backends import envs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--add", action="append", default=[], metavar="REQUIREMENT",
                        help="a line to add to container/requirements.txt (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="train runs (the first builds)")
    parser.add_argument("--checks", type=int, default=7, help="reuse checks to take the median of")
    parser.add_argument("--cold-uv-cache", action="store_true",
                        help="an empty uv cache as well (every package downloaded)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="byoc-bench-envs-") as scratch:
        root = Path(scratch)
        environ = {**os.environ, envs.CACHE_ENV: str(root / "cache")}
        if args.cold_uv_cache:
            environ["UV_CACHE_DIR"] = str(root / "uv-cache")
        project = scaffold.new_project("env-bench", output_dir=root)
        requirements = project / "container" / "requirements.txt"
        requirements.write_text(requirements.read_text() + "".join(f"{r}\n" for r in args.add))
        print(f"requirements: {', '.join(requirements.read_text().split())}")
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "byoc", "local", "train", str(project),
                                   "--backend", "process"], env=environ, capture_output=True,
                                  text=True, check=False)
            seconds = time.monotonic() - started
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            built = re.search(r"environment: built .* in ([\d.]+) s \((\d+) packages\)", done.stderr)
            what = (f"built the environment in {built.group(1)} s ({built.group(2)} packages)"
                    if built else "reused the environment")
            print(f"train run {run}: {seconds:.1f} s wall, {what}")
        checks = []
        for _ in range(args.checks):
            started = time.monotonic()
            envs.prepare(project, say=lambda message: None, environ=environ, progress=False)
            checks.append(time.monotonic() - started)
        print(f"reuse check: median {statistics.median(checks) * 1000:.0f} ms"
              f" (min {min(checks) * 1000:.0f}, max {max(checks) * 1000:.0f}, n={len(checks)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
