"""Augmented manifests (``S3DataType: AugmentedManifestFile``), expanded as SageMaker streams them.

Each JSON line yields its ``AttributeNames`` in the order given, ignoring the
other attributes. An attribute whose name ends in ``-ref`` names an object
whose bytes are streamed (here a local path, relative to the manifest); any
other attribute streams its value: a string as its UTF-8 text, anything else
as compact JSON (``1`` becomes ``1``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

#: One piece of a stream: the bytes of a file, or literal bytes.
Item = Path | bytes
REF_SUFFIX = "-ref"
MAX_ATTRIBUTES = 16


def check_attribute_names(channel: str, names: Sequence[str]) -> None:
    """:raises ConfigError: for a list CreateTrainingJob refuses."""
    if not 1 <= len(names) <= MAX_ATTRIBUTES:
        raise ConfigError(f"channel {channel!r}: AttributeNames takes 1 to {MAX_ATTRIBUTES} names,"
                          f" got {len(names)}")
    for name in names:
        if not name or len(name) > 256:
            raise ConfigError(f"channel {channel!r}: an attribute name takes 1 to 256 characters")


def read(manifest: Path, names: Sequence[str]) -> list[list[Item]]:
    """Each line's pieces, in ``AttributeNames`` order.

    :raises ConfigError: for a line that is not a JSON object, lacks a listed
        attribute, or refers to an object that cannot be read.
    """
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the augmented manifest {manifest}: {exc}") from exc
    lines: list[list[Item]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not a JSON object: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: not a JSON object")
        lines.append([_piece(record, name, manifest.parent, where) for name in names])
    return lines


def _piece(record: dict[str, object], name: str, base: Path, where: str) -> Item:
    if name not in record:
        raise ConfigError(f"{where}: no attribute {name!r} (AttributeNames lists it)")
    value = record[name]
    if name.endswith(REF_SUFFIX):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must hold a path or URI string")
        return _local_object(value, base, where)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _local_object(reference: str, base: Path, where: str) -> Path:
    if reference.startswith("file://"):
        reference = reference[len("file://"):]
    elif "://" in reference:
        raise ConfigError(f"{where}: {reference!r}: byoc local streams local files; give a path"
                          " (relative to the manifest) instead of a URI")
    path = (base / reference).resolve()
    if not path.is_file():
        raise ConfigError(f"{where}: {reference!r} is not a file ({path})")
    return path
