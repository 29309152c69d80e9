"""Model and output archives: flat tar.gz out, safe extraction in.

Extraction streams the archive once and stops at the first unsafe member or at
a limit: :data:`DEFAULT_MAX_BYTES` of file content in all and
:data:`DEFAULT_MAX_MEMBERS` members, raised with the environment variables
:data:`MAX_BYTES_ENV` and :data:`MAX_MEMBERS_ENV`. Sizes are counted from the
bytes read, not from what the headers claim.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import ArchiveError

MAX_BYTES_ENV = "BYOC_MAX_ARCHIVE_BYTES"
MAX_MEMBERS_ENV = "BYOC_MAX_ARCHIVE_MEMBERS"
#: At most this much file content (uncompressed) is taken from one archive: 10 GiB.
DEFAULT_MAX_BYTES = 10 * 1024**3
#: At most this many members (files and directories) are taken from one archive.
DEFAULT_MAX_MEMBERS = 10_000
_CHUNK = 1024 * 1024
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def pack(sources: Sequence[Path], archive: Path) -> tuple[list[str], int]:
    """Write the files under every *sources* dir into *archive*, at its root.

    Later sources win when two hold the same name, as SageMaker merges hosts'
    artifacts; symlinks and special files are left out. Returns a note for
    each file overwritten or left out, and how many files the archive holds.
    """
    notes: list[str] = []
    chosen: dict[str, Path] = {}
    for source in sources:
        if not source.is_dir():
            continue
        for path in sorted(source.rglob("*")):
            name = path.relative_to(source).as_posix()
            if path.is_symlink():
                notes.append(f"{path}: symlink left out of {archive.name}")
            elif path.is_file():
                if name in chosen:
                    notes.append(f"{name}: {chosen[name]} overwritten by {path} in {archive.name}")
                chosen[name] = path
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name, path in sorted(chosen.items()):
            tar.add(path, arcname=name, recursive=False)
    return notes, len(chosen)


@dataclass(frozen=True)
class Limits:
    """What one archive may hold: bytes of file content and members."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, or :data:`MAX_BYTES_ENV` (bytes, or with K, M, G, T: ``20G``) and
        :data:`MAX_MEMBERS_ENV` when set. :raises ArchiveError: for a value that is no size."""
        env = os.environ if environ is None else environ
        return cls(_env_number(env, MAX_BYTES_ENV, DEFAULT_MAX_BYTES, sizes=True),
                   _env_number(env, MAX_MEMBERS_ENV, DEFAULT_MAX_MEMBERS, sizes=False))


def _env_number(env: Mapping[str, str], name: str, default: int, sizes: bool) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    match = _SIZE.fullmatch(text)
    if match is None or (match.group(2) and not sizes) or float(match.group(1)) < 1:
        raise ArchiveError(f"{name}={text!r}: give a whole number"
                           + (" of bytes, or with K, M, G or T (e.g. 20G)" if sizes else ""))
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class Contents:
    """What an archive holds: its files, and their bytes in all."""

    files: int
    bytes: int


def extract(archive: Path, destination: Path, limits: Limits | None = None) -> Contents:
    """Extract *archive* into *destination*, checking every member as it comes.

    :raises ArchiveError: for an unreadable archive, one over *limits* (default:
        :meth:`Limits.from_env`), or a member that is an absolute path, climbs out with
        ``..``, or is a link, device or FIFO. *destination* is removed then (when this call
        created it), so nothing is left extracted.
    """
    created = not destination.exists()
    try:
        return _walk(archive, destination, limits or Limits.from_env())
    except BaseException:
        if created and destination.exists():
            shutil.rmtree(destination, ignore_errors=True)
        raise


def inspect(archive: Path, limits: Limits | None = None) -> Contents:
    """Read *archive* through as :func:`extract` would, writing nothing.

    :raises ArchiveError: as :func:`extract` does.
    """
    return _walk(archive, None, limits or Limits.from_env())


def check_model(archive: Path, what: str, limits: Limits | None = None) -> Contents:
    """Refuse a model archive that cannot be read, breaks a limit or holds no file.

    :raises ArchiveError: naming *what* (an option such as ``--model``).
    """
    try:
        found = inspect(archive, limits)
    except ArchiveError as exc:
        raise ArchiveError(f"{what} {archive}: {exc.message}") from None
    if found.files == 0:
        raise ArchiveError(f"{what} {archive}: the archive holds no model (no file); the job that"
                           " made it saved nothing")
    return found


def _walk(archive: Path, destination: Path | None, limits: Limits) -> Contents:
    members = files = total = 0
    made: set[Path] = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                members += 1
                if members > limits.max_members:
                    raise ArchiveError(
                        f"refusing {archive}: more than {limits.max_members} members (set"
                        f" {MAX_MEMBERS_ENV} to allow more)")
                _check(member, archive)
                if member.isfile() and total + member.size > limits.max_bytes:
                    raise _too_big(archive, limits)
                target = _target(destination, member)
                if member.isdir():
                    if target is not None and target not in made:
                        target.mkdir(parents=True, exist_ok=True)
                        made.add(target)
                    continue
                files += 1
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                total = _copy_member(source, target, member, total, archive, limits, made)
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError(f"cannot read {archive}: {_reason(exc)}") from None
    if destination is not None:
        destination.mkdir(parents=True, exist_ok=True)
    return Contents(files, total)


def _target(destination: Path | None, member: tarfile.TarInfo) -> Path | None:
    if destination is None:
        return None
    parts = [part for part in PurePosixPath(member.name).parts if part not in ("", ".")]
    return destination.joinpath(*parts)


def _copy_member(source: IO[bytes], target: Path | None, member: tarfile.TarInfo, total: int,
                 archive: Path, limits: Limits, made: set[Path]) -> int:
    out = None
    if target is not None:
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        # a new file, never through a link; executable when the member is
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        out = os.fdopen(os.open(target, flags, 0o755 if member.mode & 0o100 else 0o644), "wb")
    try:
        written = 0
        while chunk := source.read(_CHUNK):
            total += len(chunk)
            written += len(chunk)
            if total > limits.max_bytes:
                raise _too_big(archive, limits)
            if out is not None:
                if chunk.count(0) == len(chunk):
                    out.seek(len(chunk), os.SEEK_CUR)  # leave a hole, as the sparse file had
                else:
                    out.write(chunk)
        if out is not None:
            out.truncate(written)
    finally:
        if out is not None:
            out.close()
    return total


def _too_big(archive: Path, limits: Limits) -> ArchiveError:
    return ArchiveError(f"refusing {archive}: more than {_human(limits.max_bytes)} uncompressed"
                        f" (set {MAX_BYTES_ENV} to allow more, e.g. {MAX_BYTES_ENV}=40G)")


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


def _reason(exc: BaseException) -> str:
    """One line: tarfile's "could not be opened" lists every method it tried."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).strip()
    if isinstance(exc, tarfile.ReadError) and (
            not text or text.startswith("file could not be opened") or "header" in text):
        return "not a tar archive (plain, gzip, bzip2 or xz), or a damaged one"
    return " ".join(text.split()) or type(exc).__name__


def _check(member: tarfile.TarInfo, archive: Path) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith("/"):
        raise ArchiveError(f"refusing {archive}: member {member.name!r} is an absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"refusing {archive}: member {member.name!r} points outside the archive")
    if member.issym() or member.islnk():
        raise ArchiveError(f"refusing {archive}: member {member.name!r} is a link")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"refusing {archive}: member {member.name!r} is a device or FIFO")


def copy_file(source: str | Path, target: str | Path) -> None:
    """Copy one file as :func:`shutil.copy2` does, leaving a sparse file's holes as holes.

    Usable as ``shutil.copytree(..., copy_function=copy_file)``.
    """
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
                end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # nothing but a hole from offset on
                    break
                start, end = offset, size  # no hole support here: copy the rest
            src.seek(start)
            dst.seek(start)
            remaining = end - start
            while remaining > 0 and (chunk := src.read(min(_CHUNK, remaining))):
                dst.write(chunk)
                remaining -= len(chunk)
            offset = end
        dst.truncate(size)
    shutil.copystat(source, target)


def copy_tree(source: Path, target: Path) -> None:
    """:func:`shutil.copytree` with :func:`copy_file`: holes stay holes."""
    shutil.copytree(source, target, copy_function=copy_file)
