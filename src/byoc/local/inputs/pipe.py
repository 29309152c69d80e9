"""Pipe mode: one FIFO ``<data dir>/<channel>_<epoch>`` per channel and epoch, fed from the host side.

For each host and Pipe channel a feeder thread creates ``<channel>_0`` before
the container starts, opens it for writing (which waits for the reader),
streams the epoch's objects and closes it: the reader sees EOF. It then
removes that FIFO and creates ``<channel>_<n+1>`` at once, for as many epochs
as the program opens. A reader that closes early makes the write fail with
EPIPE, which ends that epoch the same way. When the job ends the feeders are
released even if a FIFO was never opened.

Files go into the pipe with ``sendfile`` (zero copy) through a pipe buffer
enlarged to 1 MiB where the kernel allows it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ...backends.base import HostSpec
from ...job import ChannelDefinition
from . import manifest, recordio
from .manifest import Item

T = TypeVar("T")
CHUNK = 16 << 20
PIPE_SIZE = 1 << 20
FIFO_MODE = 0o644


def fifo_name(channel: str, epoch: int) -> str:
    return f"{channel}_{epoch}"


def key_order(files: Sequence[Path], base: Path) -> list[Path]:
    """*files* in S3 key order: by the UTF-8 bytes of their path relative to *base*."""
    return sorted(files, key=lambda p: p.relative_to(base).as_posix().encode("utf-8"))


def shuffled(items: Sequence[T], seed: int, epoch: int) -> list[T]:
    """ShuffleConfig: *items* in the order of *epoch*, the same on every host."""
    order = list(items)
    random.Random(f"{seed}/{epoch}").shuffle(order)
    return order


@dataclass(frozen=True)
class ChannelObjects:
    """What a Pipe channel streams: a list of objects, each one or more pieces.

    An object is a file (one piece), or an augmented manifest line (one piece
    per attribute). Shuffling and sharding move whole objects.
    """

    channel: ChannelDefinition
    objects: Sequence[Sequence[Item]]
    sharded: bool = False

    @classmethod
    def load(cls, channel: ChannelDefinition, source: Path, sharded: bool) -> ChannelObjects:
        """:raises ConfigError: for an augmented manifest that cannot be expanded."""
        if channel.attribute_names is not None:
            return cls(channel, manifest.read(source, channel.attribute_names,
                                              channel.manifest_root), sharded)
        if source.is_file():
            return cls(channel, [[source]], sharded)
        files = [p for p in source.rglob("*") if p.is_file()]
        return cls(channel, [[path] for path in key_order(files, source)], sharded)

    def epoch(self, epoch: int, hosts: Sequence[str], host: str) -> list[Item]:
        """The pieces *host* receives in *epoch*, in order."""
        order = list(self.objects)
        if self.channel.shuffle_seed is not None:
            order = shuffled(order, self.channel.shuffle_seed, epoch)
        if self.sharded:
            index, count = list(hosts).index(host), len(hosts)
            order = order[index::count]
        return [piece for obj in order for piece in obj]


def load_channels(channels: Iterable[ChannelDefinition], job_mode: str) -> dict[str, ChannelObjects]:
    """What each Pipe channel of a job in *job_mode* streams (a channel's own ``InputMode`` first).

    :raises ConfigError: for a manifest that cannot be expanded.
    """
    return {channel.name: ChannelObjects.load(channel, Path(channel.source).resolve(),
                                              channel.distribution == "ShardedByS3Key")
            for channel in channels if channel.effective_input_mode(job_mode) == "Pipe"}


@dataclass
class Feeder:
    """Feeds one channel's FIFOs on one host, epoch after epoch, until stopped."""

    data_dir: Path
    channel: ChannelDefinition
    pieces: Callable[[int], list[Item]]
    scratch: Path
    epochs_done: int = 0
    closed_early: int = 0
    #: Whether the reader has opened a FIFO.
    opened: bool = False
    error: str | None = None
    _epoch: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def path(self, epoch: int) -> Path:
        return self.data_dir / fifo_name(self.channel.name, epoch)

    def prepare(self) -> None:
        """Create ``<channel>_0``; call before the program starts."""
        _mkfifo(self.path(0))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"pipe-{self.channel.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Release the feeder, also when it waits for a reader that never comes."""
        self._stop.set()
        thread = self._thread
        while thread is not None and thread.is_alive() and timeout > 0:
            with contextlib.suppress(OSError):  # opening the read end frees a writer blocked in open()
                os.close(os.open(self.path(self._epoch), os.O_RDONLY | os.O_NONBLOCK))
            thread.join(0.05)
            timeout -= 0.05

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                path = self.path(self._epoch)
                descriptor = os.open(path, os.O_WRONLY)  # waits for the reader
                try:
                    if self._stop.is_set():
                        return
                    self.opened = True
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(descriptor, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
                    try:
                        for piece in self.pieces(self._epoch):
                            self._send(descriptor, piece)
                    except BrokenPipeError:
                        self.closed_early += 1
                finally:
                    os.close(descriptor)
                self.epochs_done += 1
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                _mkfifo(self.path(self._epoch + 1))
                self._epoch += 1
        except OSError as exc:
            if not self._stop.is_set():
                self.error = f"{exc.strerror or exc}"

    def _send(self, descriptor: int, piece: Item) -> None:
        wrap = self.channel.record_wrapper == "RecordIO"
        if isinstance(piece, bytes):
            _write_all(descriptor, recordio.frame(piece) if wrap else piece)
            return
        if self.channel.compression == "Gzip":
            if not wrap:
                _gunzip_into(descriptor, piece)
                return
            with _gunzipped(piece, self.scratch) as plain:
                _send_file(descriptor, plain, wrap)
            return
        _send_file(descriptor, piece, wrap)


def _send_file(descriptor: int, path: Path, wrap: bool) -> None:
    with path.open("rb") as source:
        size = os.fstat(source.fileno()).st_size
        plan = recordio.parts(size) if wrap else iter([(0, size, None)])
        for offset, length, flag in plan:
            if flag is not None:
                _write_all(descriptor, recordio.header(length, flag))
            _sendfile_all(descriptor, source.fileno(), offset, length)
            if flag is not None:
                _write_all(descriptor, recordio.padding(length))


def _sendfile_all(out: int, source: int, offset: int, count: int) -> None:
    end = offset + count
    while offset < end:
        sent = os.sendfile(out, source, offset, min(CHUNK, end - offset))
        if sent == 0:
            raise OSError(f"the file shrank while being streamed ({end - offset} bytes missing)")
        offset += sent


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view[:CHUNK])
        view = view[written:]


def _gunzip(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file (of one or more members), in chunks."""
    with path.open("rb") as source:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        started = False
        while raw := source.read(1 << 20):
            while raw:
                started = True
                try:
                    out = decoder.decompress(raw)
                except zlib.error as exc:
                    raise OSError(f"{path.name} is not gzip data ({exc})") from exc
                if out:
                    yield out
                raw = b""
                if decoder.eof:
                    raw = decoder.unused_data
                    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    started = False
        if started and not decoder.eof:
            raise OSError(f"{path.name} is a truncated gzip file")


def _gunzip_into(descriptor: int, path: Path) -> None:
    for chunk in _gunzip(path):
        _write_all(descriptor, chunk)


@contextlib.contextmanager
def _gunzipped(path: Path, scratch: Path) -> Iterator[Path]:
    scratch.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=scratch, suffix=".plain")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in _gunzip(path):
                out.write(chunk)
        yield Path(name)
    finally:
        os.unlink(name)


def _mkfifo(path: Path) -> None:
    os.mkfifo(path, FIFO_MODE)
    os.chmod(path, FIFO_MODE)  # whatever the umask


@dataclass
class Pipes:
    """Every feeder of a job."""

    feeders: dict[tuple[str, str], Feeder]

    @classmethod
    def for_job(cls, hosts: Sequence[HostSpec], objects: Mapping[str, ChannelObjects],
                scratch: Path) -> Pipes:
        """A feeder for each host and Pipe channel (*objects*: see :func:`load_channels`)."""
        names = [host.host for host in hosts]
        return cls({(host.host, name): Feeder(host.root / "input" / "data", found.channel,
                                              _epoch_function(found, names, host.host),
                                              scratch / host.host)
                    for name, found in sorted(objects.items()) for host in hosts})

    def __enter__(self) -> Pipes:
        for feeder in self.feeders.values():
            feeder.prepare()
        for feeder in self.feeders.values():
            feeder.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for feeder in self.feeders.values():
            feeder.stop()

    def notes(self) -> list[str]:
        """What each feeder did, one line per host and channel."""
        lines = []
        for (host, name), feeder in sorted(self.feeders.items()):
            line = f"{host}: Pipe channel {name!r}: {feeder.epochs_done} epoch(s) streamed"
            if feeder.closed_early:
                line += f", {feeder.closed_early} closed early by the reader"
            if feeder.error:
                line += f"; streaming failed: {feeder.error}"
            lines.append(line)
        return lines


def _epoch_function(objects: ChannelObjects, hosts: Sequence[str], host: str
                    ) -> Callable[[int], list[Item]]:
    def pieces(epoch: int) -> list[Item]:
        return objects.epoch(epoch, hosts, host)

    return pieces
