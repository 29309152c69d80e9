"""A folder nobody may write in, also for root (who ignores permission bits): the immutable
attribute then, else chmod."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """*folder* read-only for as long as the block runs (skips where that cannot be had)."""
    folder.mkdir(parents=True, exist_ok=True)
    immutable = os.geteuid() == 0
    if immutable:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"root cannot make {folder} read-only here (chattr +i failed)")
    else:
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)
