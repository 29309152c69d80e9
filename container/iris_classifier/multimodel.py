"""Runtime: you should not need to edit this. SageMaker's multi-model API (``SAGEMAKER_MULTI_MODEL=true``).

SageMaker copies each model's archive to the instance, extracts it under
``/opt/ml/models/NAME/model`` and then calls (predictor.py holds the routes):

=================================  ==================================================
``POST /models``                   ``{"model_name": NAME, "url": DIR}``: load it.
                                   200; 409 if NAME is loaded; 507 if there is not
                                   memory enough; 400 for a bad request; 500 if
                                   model.py cannot load DIR
``GET /models``                    ``{"models": [{"modelName", "modelUrl"}, ...]}``,
                                   ``max_results`` (100) at a time, with a
                                   ``nextPageToken`` to pass as ``next_page_token``
                                   while more remain
``GET /models/NAME``               ``{"modelName", "modelUrl"}``; 404 if not loaded
``DELETE /models/NAME``            unload it; 404 if not loaded
``POST /models/NAME/invoke``       predictions, as ``/invocations`` answers them;
                                   404 if not loaded
=================================  ==================================================

``/ping`` answers 200 with no model loaded. Which model to unload when memory
runs short (least recently used) is the platform's choice, not the container's.

gunicorn's workers share the list of loaded models: a folder (``SERVE_MODELS_DIR``,
set by serve, under /tmp) with one file per model, created atomically, so that a
name is loaded once whichever worker SageMaker's requests reach. The worker that
answers ``POST /models`` loads the model (and reports a failure); another worker
loads its own copy the first time it serves the model, and every worker drops its
copy once the model is no longer listed. Models are always loaded after the fork,
by the worker that uses them, so ``FORK_SAFE`` plays no part here.

Memory (507): a model is taken to need in memory what its files hold on disk, in
each worker. ``POST /models`` answers 507 when that size times the workers is
more than the memory available now: the container's cgroup limit less what it
uses (page cache that can be dropped aside), or MemAvailable in /proc/meminfo
where there is no limit, whichever is smaller.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from payloads import PayloadError

#: GET /models answers this many models at a time unless ``max_results`` says otherwise.
DEFAULT_PAGE = 100
MAX_PAGE = 1000
CGROUP = Path("/sys/fs/cgroup")
MEMINFO = Path("/proc/meminfo")
#: cgroup v1 writes this (or more) for "no limit".
NO_LIMIT = 1 << 60


class Registry:
    """The models loaded through /models: the shared list, and this worker's copies."""

    def __init__(self, directory: Path | None, workers: int, load: Callable[[Path], Any]) -> None:
        """*load* turns a model dir into what the worker keeps: predictor.py's ``Loaded``."""
        self.directory = directory or Path(tempfile.mkdtemp(prefix="models-"))
        self.workers = workers
        self._load = load
        self._copies: dict[str, tuple[str, Any]] = {}  # name -> (url, loaded)
        self._lock = threading.Lock()  # held while this worker loads a model

    def _entry(self, name: str) -> Path:
        # NAME is opaque (and may be long): the file is named by its hash
        return self.directory / (hashlib.sha256(name.encode()).hexdigest() + ".json")

    def describe(self, name: str) -> dict[str, str] | None:
        """``{"modelName", "modelUrl"}`` of a loaded model, or None."""
        try:
            listed = json.loads(self._entry(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return listed if isinstance(listed, dict) else None

    def page(self, max_results: str | None, token: str | None) -> dict[str, Any]:
        """One page of ``GET /models``; :raises PayloadError: 400 for a bad parameter."""
        size = _whole(max_results, "max_results", DEFAULT_PAGE, 1, MAX_PAGE)
        start = _whole(token, "next_page_token", 0, 0, 1 << 31)
        described = []
        for entry in self.directory.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                described.append(json.loads(entry.read_text(encoding="utf-8")))
        described.sort(key=lambda model: str(model.get("modelName")))
        answer: dict[str, Any] = {"models": described[start:start + size]}
        if start + size < len(described):
            answer["nextPageToken"] = str(start + size)
        return answer

    def add(self, body: Any) -> dict[str, str]:
        """Load the model ``POST /models`` names; :raises PayloadError: 400, 409, 500 or 507."""
        if not isinstance(body, dict):
            raise PayloadError(400, 'the body must be JSON: {"model_name": NAME, "url": DIR}')
        name, url = body.get("model_name"), body.get("url")
        if not isinstance(name, str) or not name.strip() or not isinstance(url, str) or not url:
            raise PayloadError(400, 'the body must name the model and its folder:'
                                    ' {"model_name": NAME, "url": DIR}')
        if self.describe(name) is not None:
            raise PayloadError(409, f"model {name} is already loaded")
        folder = Path(url)
        if not folder.is_dir():
            raise PayloadError(400, f"no model folder at {url}")
        need, available = size_on_disk(folder) * self.workers, available_memory()
        if available is not None and need > available:
            raise PayloadError(507, f"not enough memory to load model {name}: it needs"
                                    f" {_mib(need)} MiB ({self.workers} worker(s)), {_mib(available)}"
                                    f" MiB are available")
        loaded = self._load(folder)
        if getattr(loaded, "error", ""):
            raise PayloadError(500, loaded.error)
        described = {"modelName": name, "modelUrl": url}
        if not self._list(name, described):
            raise PayloadError(409, f"model {name} is already loaded")
        self._copies[name] = (url, loaded)
        return described

    def remove(self, name: str) -> bool:
        """Unload *name*; False if it was not loaded."""
        try:
            self._entry(name).unlink()
        except FileNotFoundError:
            return False
        self.prune()
        return True

    def model(self, name: str) -> Any:
        """This worker's copy of a loaded model (loading it here first if need be), or None."""
        described = self.describe(name)
        if described is None:
            self.prune()
            return None
        url = described["modelUrl"]
        with self._lock:  # one load per model and worker, whatever the threads
            kept = self._copies.get(name)
            if kept is None or kept[0] != url:
                kept = (url, self._load(Path(url)))
                self._copies[name] = kept
            return kept[1]

    def prune(self) -> None:
        """Drop the copies of models no longer listed (unloaded through another worker).

        Without the lock: /ping runs this too, and must not wait for a model's load.
        """
        gone = [name for name in list(self._copies) if not self._entry(name).exists()]
        for name in gone:
            self._copies.pop(name, None)
        if gone:
            gc.collect()

    def _list(self, name: str, described: dict[str, str]) -> bool:
        """Add *name* to the shared list; False if it is there already (atomic: a hard link)."""
        with tempfile.NamedTemporaryFile("w", dir=self.directory, suffix=".new", delete=False) as out:
            json.dump(described, out)
        try:
            os.link(out.name, self._entry(name))
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(out.name)


def size_on_disk(folder: Path) -> int:
    """The bytes the files under *folder* hold (their length, as a load would read them)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, file)).st_size
    return total


def available_memory() -> int | None:
    """Bytes this container may still use: the smaller of the cgroup's room and MemAvailable."""
    found = [room for room in (_cgroup_room(), _meminfo_available()) if room is not None]
    return min(found) if found else None


def _cgroup_room() -> int | None:
    for limit_file, usage_file, stat_file, cache in (
        ("memory.max", "memory.current", "memory.stat", "inactive_file"),  # cgroup v2
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
         "total_inactive_file"),  # cgroup v1
    ):
        try:
            limit_text = (CGROUP / limit_file).read_text().strip()
            if limit_text == "max" or int(limit_text) >= NO_LIMIT:
                return None
            used = int((CGROUP / usage_file).read_text())
        except (OSError, ValueError):
            continue
        try:
            stats = dict(line.split() for line in (CGROUP / stat_file).read_text().splitlines())
            used -= int(stats.get(cache, 0))
        except (OSError, ValueError):
            pass
        return max(0, int(limit_text) - used)
    return None


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _whole(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise PayloadError(400, f"{name} must be a whole number between {low} and {high},"
                                f" got {text!r}")
    return int(text)


def _mib(size: int) -> int:
    return -(-size // (1024 * 1024))
