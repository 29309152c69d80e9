"""Checkpoint sync: restore at start, copy closed files while running, mirror deletions."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from byoc.local import checkpoints


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_restore_copies_the_store_into_the_local_path(tmp_path: Path) -> None:
    store, local = tmp_path / "store", tmp_path / "local"
    (store / "sub").mkdir(parents=True)
    (store / "epoch-1.ckpt").write_bytes(b"one")
    (store / "sub" / "state.json").write_text("{}")
    (store / "x.sagemaker-ignore").write_text("temp")
    with checkpoints.CheckpointSync(local, store, interval=0.1) as sync:
        assert sync.restored == 2
        assert (local / "epoch-1.ckpt").read_bytes() == b"one"
        assert (local / "sub" / "state.json").read_text() == "{}"
        assert not (local / "x.sagemaker-ignore").exists()
    # nothing changed: nothing uploaded, nothing deleted
    assert (sync.uploaded, sync.deleted) == (0, 0)


def test_closed_files_are_copied_while_the_job_runs(tmp_path: Path) -> None:
    store, local = tmp_path / "store", tmp_path / "local"
    with checkpoints.CheckpointSync(local, store, interval=0.1):
        (local / "epoch-1.ckpt").write_bytes(b"a" * 1000)
        assert eventually(lambda: (store / "epoch-1.ckpt").exists())
        assert (store / "epoch-1.ckpt").read_bytes() == b"a" * 1000
        # the marker follows the copy: the store may hold the file a moment before it appears
        assert eventually(lambda: (local / "epoch-1.ckpt.sagemaker-uploaded").exists())
        # a rename into place counts as a new file
        (local / "tmp.sagemaker-ignore").write_bytes(b"b")
        assert not eventually(lambda: (store / "tmp.sagemaker-ignore").exists(), 0.5)
        os.replace(local / "tmp.sagemaker-ignore", local / "epoch-2.ckpt")
        assert eventually(lambda: (store / "epoch-2.ckpt").exists())
        # deleting a file deletes it from the store
        (local / "epoch-1.ckpt").unlink()
        assert eventually(lambda: not (store / "epoch-1.ckpt").exists())
    assert sorted(p.name for p in store.iterdir()) == ["epoch-2.ckpt"]


def test_a_file_still_being_written_is_never_stored_half_written(tmp_path: Path) -> None:
    store, local = tmp_path / "store", tmp_path / "local"
    seen: list[bytes] = []
    stop = threading.Event()

    def watch_store() -> None:
        while not stop.is_set():
            target = store / "big.ckpt"
            if target.exists():
                seen.append(target.read_bytes())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_store)
    with checkpoints.CheckpointSync(local, store, interval=0.05):
        watcher.start()
        with (local / "big.ckpt").open("wb") as handle:
            for _ in range(10):  # written in slow pieces over about a second
                handle.write(b"x" * 100_000)
                handle.flush()
                time.sleep(0.1)
        assert eventually(lambda: (store / "big.ckpt").exists())
        time.sleep(0.2)
    stop.set()
    watcher.join()
    assert seen, "the store never held the file"
    assert all(len(body) == 1_000_000 for body in seen)


def test_the_final_sync_takes_what_the_watch_missed(tmp_path: Path) -> None:
    store, local = tmp_path / "store", tmp_path / "local"
    (store).mkdir()
    (store / "old.ckpt").write_bytes(b"old")
    sync = checkpoints.CheckpointSync(local, store, interval=60)  # no pass before the end
    with sync:
        (local / "new.ckpt").write_bytes(b"new")
        (local / "old.ckpt").unlink()
    assert sorted(p.name for p in store.iterdir()) == ["new.ckpt"]
    assert (sync.uploaded, sync.deleted) == (1, 1)


def test_hosts_sharing_a_store_do_not_delete_each_others_files(tmp_path: Path) -> None:
    store = tmp_path / "store"
    one = checkpoints.CheckpointSync(tmp_path / "algo-1", store, host="algo-1", interval=60)
    two = checkpoints.CheckpointSync(tmp_path / "algo-2", store, host="algo-2", interval=60)
    with one, two:
        (tmp_path / "algo-1" / "algo-1.ckpt").write_bytes(b"1")
        (tmp_path / "algo-2" / "algo-2.ckpt").write_bytes(b"2")
    assert sorted(p.name for p in store.iterdir()) == ["algo-1.ckpt", "algo-2.ckpt"]
