"""Model and output archives: flat tar.gz out, safe extraction in."""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .errors import ArchiveError


def pack(sources: Sequence[Path], archive: Path) -> list[str]:
    """Write the files under every *sources* dir into *archive*, at its root.

    Later sources win when two hold the same name, as SageMaker merges hosts'
    artifacts; symlinks and special files are left out. Returns a note for
    each file overwritten or left out.
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
    return notes


def extract(archive: Path, destination: Path) -> None:
    """Extract *archive* into *destination* after checking every member.

    :raises ArchiveError: for an unreadable archive or a member that is an
        absolute path, climbs out with ``..``, or is a link, device or FIFO.
        Nothing is extracted then.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check(member, archive)
            destination.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, members=members, filter="data")
            else:  # Python before 3.11.4 (Debian bookworm's 3.11.2): the checks above suffice
                tar.extractall(destination, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot read {archive}: {exc}") from exc


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
