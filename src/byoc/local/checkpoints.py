"""Checkpoints as SageMaker syncs them: a local directory plays ``CheckpointConfig.S3Uri``.

At job start everything in the store is copied into each host's checkpoint
directory (``LocalPath``). While the job runs, every file the program closes
after writing, or renames into place, is copied out within about a second,
and a file the program deletes is deleted from the store. After the hosts
exit, for whatever reason, one last pass reconciles the store with what the
host left.

Only closed files are copied (Linux inotify's close-after-write, through
watchdog), so a file that is being written when a sync runs is never stored
half-written. Each copy goes to a temporary name in the store and is renamed
into place. As the service's agent does, byoc leaves
``<file>.sagemaker-uploading`` beside a file while copying it and
``<file>.sagemaker-uploaded`` once done, and skips files whose names end in
``.sagemaker-ignore`` (the suffix programs use for files still being written).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..say import Say, quiet

UPLOADING = ".sagemaker-uploading"
UPLOADED = ".sagemaker-uploaded"
IGNORED = ".sagemaker-ignore"
_TEMP_PREFIX = ".byoc-partial-"
#: Seconds between two passes over the closed files waiting to be copied.
SYNC_INTERVAL = 1.0



def skipped(name: str) -> bool:
    """Files the sync never copies: markers, temp names, ``.sagemaker-ignore``."""
    return name.endswith((UPLOADING, UPLOADED, IGNORED)) or name.startswith(_TEMP_PREFIX)


def _files(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and not skipped(path.name):
            found[path.relative_to(root).as_posix()] = path
    return found


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f"{_TEMP_PREFIX}{target.name}.{os.getpid()}.{threading.get_ident()}"
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def restore(store: Path, local: Path) -> int:
    """Copy every stored checkpoint into *local*; return how many files."""
    local.mkdir(parents=True, exist_ok=True)
    count = 0
    for key, path in sorted(_files(store).items()):
        _copy_atomically(path, local / key)
        count += 1
    return count


@dataclass
class CheckpointSync:
    """Mirrors one host's checkpoint directory *local* into *store* while a job runs.

    Use as a context manager around the run: entering restores the store and
    starts watching; leaving stops watching and runs the final sync.
    """

    local: Path
    store: Path
    host: str = "algo-1"
    interval: float = SYNC_INTERVAL
    say: Say = quiet
    restored: int = 0
    uploaded: int = 0
    deleted: int = 0
    #: The files this host knows in the store, with the (size, mtime) copied.
    _known: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    _pending: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _observer: object | None = None

    def __enter__(self) -> CheckpointSync:
        self.store.mkdir(parents=True, exist_ok=True)
        self.restored = restore(self.store, self.local)
        for key, path in _files(self.local).items():
            self._known[key] = _stamp(path)
        self._watch()
        self._thread = threading.Thread(target=self._loop, name=f"checkpoints-{self.host}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop watching and reconcile the store with what the host left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._unwatch()
        self.final_sync()

    def final_sync(self) -> None:
        present = _files(self.local)
        for key, path in sorted(present.items()):
            if self._known.get(key, ("new", 0)) != _stamp(path) or not (self.store / key).exists():
                self._upload(key, path)
        for key in sorted(set(self._known) - set(present)):
            self._delete(key)

    # -- while the job runs -------------------------------------------------

    def _watch(self) -> None:
        from watchdog.events import (
            FileClosedEvent,
            FileDeletedEvent,
            FileMovedEvent,
            FileSystemEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        sync = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                paths: list[str] = []
                if isinstance(event, FileClosedEvent | FileDeletedEvent):
                    paths.append(str(event.src_path))
                elif isinstance(event, FileMovedEvent):
                    paths += [str(event.src_path), str(event.dest_path)]
                with sync._lock:
                    for raw in paths:
                        path = Path(raw)
                        if not skipped(path.name):
                            try:
                                sync._pending.add(path.relative_to(sync.local).as_posix())
                            except ValueError:
                                pass

        observer = Observer()
        observer.schedule(Handler(), str(self.local), recursive=True)
        observer.start()
        self._observer = observer

    def _unwatch(self) -> None:
        observer = self._observer
        if observer is not None:
            observer.stop()  # type: ignore[attr-defined]
            observer.join()  # type: ignore[attr-defined]
            self._observer = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Copy out the files closed, renamed or deleted since the last pass."""
        with self._lock:
            keys, self._pending = sorted(self._pending), set()
        for key in keys:
            path = self.local / key
            if path.is_file() and not path.is_symlink():
                self._upload(key, path)
            elif not path.exists() and key in self._known:
                self._delete(key)

    def _upload(self, key: str, path: Path) -> None:
        before = _stamp(path)
        if before is None:
            return
        marker = path.with_name(path.name + UPLOADING)
        done = path.with_name(path.name + UPLOADED)
        try:
            done.unlink(missing_ok=True)
            marker.touch()
        except OSError:
            marker = done = Path()
        try:
            _copy_atomically(path, self.store / key)
        except FileNotFoundError:
            return  # deleted meanwhile: the delete event follows
        finally:
            if marker != Path():
                marker.unlink(missing_ok=True)
        if _stamp(path) != before:
            return  # written again while copied: its next close copies it again
        if done != Path():
            done.touch()
        self._known[key] = before
        self.uploaded += 1

    def _delete(self, key: str) -> None:
        target = self.store / key
        target.unlink(missing_ok=True)
        self._known.pop(key, None)
        for suffix in (UPLOADED, UPLOADING):
            (self.local / (key + suffix)).unlink(missing_ok=True)
        self.deleted += 1
        parent = target.parent
        while parent != self.store and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

