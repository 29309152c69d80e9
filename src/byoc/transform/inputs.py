"""The input objects of a transform job and where each one's output goes."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, OutputLinkError

OUT_SUFFIX = ".out"


@dataclass(frozen=True)
class InputFile:
    path: Path
    #: The object key relative to the input prefix, with ``/``: ``2024/part-1.csv``.
    key: str
    size: int

    def output(self, output_dir: Path) -> Path:
        return output_dir.joinpath(*self.key.split("/")).with_name(Path(self.key).name + OUT_SUFFIX)


def list_inputs(source: Path) -> list[InputFile]:
    """*source* itself, or every file under it, in key order (as S3 lists a prefix).

    :raises InputError: when it does not exist or holds no file.
    """
    if source.is_file():
        return [InputFile(source, source.name, source.stat().st_size)]
    if not source.is_dir():
        raise InputError(f"--input {source} is neither a file nor a directory")
    found: list[InputFile] = []
    for root, dirs, files in os.walk(source):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            if path.is_file():
                found.append(InputFile(path, path.relative_to(source).as_posix(), path.stat().st_size))
    if not found:
        raise InputError(f"--input {source} holds no file")
    # S3 lists keys in the order of their UTF-8 bytes
    return sorted(found, key=lambda item: item.key.encode("utf-8"))


def check_output_dir(source: Path, output_dir: Path) -> None:
    """:raises InputError: when outputs would land among the inputs."""
    inputs = source.resolve()
    outputs = output_dir.resolve()
    if source.is_dir() and (outputs == inputs or inputs in outputs.parents):
        raise InputError(f"--output {output_dir} is inside --input {source}; the outputs would be"
                         " read as inputs by the next run")
    if outputs.exists() and not outputs.is_dir():
        raise InputError(f"--output {output_dir} exists and is not a directory")


def make_output_dir(output_dir: Path) -> None:
    """:raises InputError: naming the folder when it cannot be created."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output {output_dir}: cannot create it: {exc.strerror or exc}"
                         ) from None


def output_parent(output_dir: Path, final: Path) -> None:
    """Create the folders between *output_dir* and *final*, refusing any that is a link.

    :raises OutputLinkError: for a symbolic link on the way (never followed out).
    """
    current = output_dir
    for part in final.relative_to(output_dir).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise OutputLinkError(f"{current} is a symbolic link; byoc does not write through it")
        current.mkdir(exist_ok=True)


def open_output(temp: Path) -> BinaryIO:
    """Open *temp* for writing as a new file: whatever has its name (an earlier run's leftover,
    a link planted there) is removed first, never followed."""
    temp.unlink(missing_ok=True)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    return os.fdopen(descriptor, "wb")


@dataclass
class Opened:
    stream: BinaryIO

    def __enter__(self) -> BinaryIO:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.close()


def open_input(item: InputFile, compression: str) -> Opened:
    """The file's bytes, decompressed when *compression* is ``Gzip``."""
    if compression == "Gzip":
        return Opened(gzip.open(item.path, "rb"))  # type: ignore[arg-type]
    return Opened(item.path.open("rb"))


def temp_output(final: Path) -> Path:
    """Where an output is written until it is complete (the same directory, hidden)."""
    return final.with_name(f".{final.name}.partial")
