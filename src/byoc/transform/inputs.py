"""The input objects of a transform job and where each one's output goes."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

OUT_SUFFIX = ".out"


class InputError(ValueError):
    """The input or output location cannot be used."""


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
