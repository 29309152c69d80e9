"""Augmented manifests (``S3DataType: AugmentedManifestFile``), expanded as SageMaker streams them.

Each JSON line yields its ``AttributeNames`` in the order given, ignoring the
other attributes. An attribute whose name ends in ``-ref`` names an object
whose bytes are streamed (here a local path, relative to the manifest); any
other attribute streams its value: a string as its UTF-8 text, anything else
as compact JSON (``1`` becomes ``1``).

A referenced file must lie under the manifest's folder, or under the root the
user names for the channel (``--manifest-root NAME=DIR``, or ``manifest_root``
in ``byoc.toml``), after every
symlink is followed: a manifest is data, and data must not make byoc stream an
arbitrary file of the host (``/etc/shadow``, ``~/.aws/credentials``) into a container.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ... import contract
from ...errors import ConfigError

#: One piece of a stream: the bytes of a file, or literal bytes.
Item = Path | bytes
REF_SUFFIX = "-ref"


def read(manifest: Path, names: Sequence[str], root: Path | None = None) -> list[list[Item]]:
    """Each line's pieces, in ``AttributeNames`` order.

    :param root: the folder every referenced file must lie under (default: the manifest's).
    :raises ConfigError: for a line that is not a JSON object, lacks a listed
        attribute, or refers to an object that cannot be read or lies outside *root*.
    """
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the augmented manifest {manifest}: {exc}") from exc
    base = manifest.parent
    allowed = (root if root is not None else base).resolve()
    lines: list[list[Item]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest}, line {number}"
        record = contract.parse_json(line, where)
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: not a JSON object")
        lines.append([_piece(record, name, base, allowed, where) for name in names])
    return lines


def _piece(record: dict[str, object], name: str, base: Path, allowed: Path, where: str) -> Item:
    if name not in record:
        raise ConfigError(f"{where}: no attribute {name!r} (AttributeNames lists it)")
    value = record[name]
    if name.endswith(REF_SUFFIX):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must hold a path or URI string")
        return _local_object(value, base, allowed, where)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _local_object(reference: str, base: Path, allowed: Path, where: str) -> Path:
    path_text = reference
    if path_text.startswith("file://"):
        path_text = path_text[len("file://"):]
    elif "://" in path_text:
        raise ConfigError(f"{where}: {reference!r}: byoc local streams local files; give a path"
                          " (relative to the manifest) instead of a URI")
    if not path_text or "\0" in path_text:
        raise ConfigError(f"{where}: {reference!r} is not a file path")
    path = (base / path_text).resolve()  # every symlink followed
    if not path.is_relative_to(allowed):
        raise ConfigError(f"{where}: {reference!r} is outside {allowed} ({path}); a manifest may"
                          " only name files under its own folder, or under the folder"
                          " --manifest-root NAME=DIR names")
    if not path.is_file():
        raise ConfigError(f"{where}: {reference!r} is not a file ({path})")
    return path
