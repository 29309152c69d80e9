"""Each channel's input settings, from options and ``byoc.toml``, checked as CreateTrainingJob checks them.

``byoc.toml`` may hold::

    [train]
    input_mode = "Pipe"                 # AlgorithmSpecification.TrainingInputMode

    [train.channels.training]           # one table per channel
    input_mode = "File"                 # Channel.InputMode
    record_wrapper = "RecordIO"         # Channel.RecordWrapperType
    compression = "Gzip"                # Channel.CompressionType
    shuffle_seed = 7                    # Channel.ShuffleConfig.Seed
    attribute_names = ["source-ref", "class"]   # AugmentedManifestFile
    manifest_root = "data"              # where its -ref files may lie (default: the manifest's folder)

Command-line options override it, key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import ConfigError
from ..project import ProjectConfig
from . import manifest

INPUT_MODES = contract.INPUT_MODES
RECORD_WRAPPERS = contract.RECORD_WRAPPERS
COMPRESSIONS = contract.COMPRESSIONS
S3_PREFIX = "S3Prefix"
AUGMENTED_MANIFEST = "AugmentedManifestFile"
LONG = (-(1 << 63), (1 << 63) - 1)
_TOML_KEYS = ("input_mode", "record_wrapper", "compression", "shuffle_seed", "attribute_names",
              "manifest_root")


@dataclass(frozen=True)
class ChannelInput:
    """How one channel reaches the container."""

    name: str
    input_mode: str = "File"
    record_wrapper: str = "None"
    compression: str = "None"
    shuffle_seed: int | None = None
    attribute_names: tuple[str, ...] | None = None
    #: The folder an augmented manifest's ``-ref`` files must lie under (None: the manifest's).
    manifest_root: Path | None = None

    @property
    def data_type(self) -> str:
        return AUGMENTED_MANIFEST if self.attribute_names is not None else S3_PREFIX

    @property
    def is_pipe(self) -> bool:
        return self.input_mode == "Pipe"


@dataclass(frozen=True)
class InputOptions:
    """What the user asked for; unset values fall back to a lower layer, then to SageMaker's defaults."""

    input_mode: str | None = None
    channel_modes: Mapping[str, str] = field(default_factory=dict)
    record_wrappers: Mapping[str, str] = field(default_factory=dict)
    compressions: Mapping[str, str] = field(default_factory=dict)
    shuffle_seeds: Mapping[str, int] = field(default_factory=dict)
    attribute_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    manifest_roots: Mapping[str, Path] = field(default_factory=dict)

    def over(self, base: InputOptions) -> InputOptions:
        """These options, with *base* filling what they leave unset."""
        return InputOptions(
            input_mode=self.input_mode or base.input_mode,
            channel_modes={**base.channel_modes, **self.channel_modes},
            record_wrappers={**base.record_wrappers, **self.record_wrappers},
            compressions={**base.compressions, **self.compressions},
            shuffle_seeds={**base.shuffle_seeds, **self.shuffle_seeds},
            attribute_names={**base.attribute_names, **self.attribute_names},
            manifest_roots={**base.manifest_roots, **self.manifest_roots})

    @classmethod
    def parse(cls, *, input_mode: str | None = None,
              channel_modes: Mapping[str, str] | None = None,
              record_wrappers: Mapping[str, str] | None = None,
              compressions: Mapping[str, str] | None = None,
              shuffle_seeds: Mapping[str, str] | None = None,
              attribute_names: Mapping[str, str] | None = None) -> InputOptions:
        """Options as the command line gives them (``NAME=VALUE`` already split)."""
        return cls(input_mode=input_mode, channel_modes=dict(channel_modes or {}),
                   record_wrappers=dict(record_wrappers or {}), compressions=dict(compressions or {}),
                   shuffle_seeds={name: _seed(name, text, "--shuffle")
                                  for name, text in (shuffle_seeds or {}).items()},
                   attribute_names={name: tuple(part.strip() for part in text.split(","))
                                    for name, text in (attribute_names or {}).items()})

    @classmethod
    def from_config(cls, config: ProjectConfig) -> InputOptions:
        """The ``[train]`` section of a project's ``byoc.toml`` (nothing set when it has none).

        :raises ConfigError: for a value of the wrong type.
        """
        path = config.path
        table = config.train
        mode = table.get("input_mode")
        if mode is not None and not isinstance(mode, str):
            raise ConfigError(f"{path}: train.input_mode must be a string")
        channels = table.get("channels", {})
        if not isinstance(channels, dict):
            raise ConfigError(f"{path}: [train.channels] must hold one table per channel")
        found: dict[str, dict[str, Any]] = {key: {} for key in _TOML_KEYS}
        for name, settings in channels.items():
            if not isinstance(settings, dict):
                raise ConfigError(f"{path}: [train.channels.{name}] must be a table")
            for key, value in settings.items():
                if key not in _TOML_KEYS:
                    raise ConfigError(f"{path}: [train.channels.{name}] has unknown key {key!r};"
                                      f" known: {', '.join(_TOML_KEYS)}")
                found[key][name] = _toml_value(path, name, key, value)
        return cls(input_mode=mode, channel_modes=found["input_mode"],
                   record_wrappers=found["record_wrapper"], compressions=found["compression"],
                   shuffle_seeds=found["shuffle_seed"], attribute_names=found["attribute_names"],
                   manifest_roots=found["manifest_root"])

    def resolve(self, sources: Mapping[str, Path]) -> dict[str, ChannelInput]:
        """Every channel's settings.

        :raises ConfigError: with CreateTrainingJob's reason for a combination it refuses.
        """
        mode = self.input_mode or "File"
        contract.check_enum(mode, INPUT_MODES, "algorithmSpecification.trainingInputMode")
        for option, values in (("--channel-input-mode", self.channel_modes),
                               ("--record-wrapper", self.record_wrappers),
                               ("--compression", self.compressions), ("--shuffle", self.shuffle_seeds),
                               ("--attribute-names", self.attribute_names),
                               ("manifest_root", self.manifest_roots)):
            for name in values:
                if name not in sources:
                    raise ConfigError(f"{option} names channel {name!r}, which is not a channel")
        for name in sources:
            contract.check_channel_name(name)
        resolved: dict[str, ChannelInput] = {}
        for index, name in enumerate(sorted(sources), start=1):
            member = f"inputDataConfig.{index}.member"
            channel = ChannelInput(
                name, input_mode=self.channel_modes.get(name, mode),
                record_wrapper=self.record_wrappers.get(name, "None"),
                compression=self.compressions.get(name, "None"),
                shuffle_seed=self.shuffle_seeds.get(name),
                attribute_names=self.attribute_names.get(name),
                manifest_root=self.manifest_roots.get(name))
            contract.check_enum(channel.input_mode, INPUT_MODES, f"{member}.inputMode")
            contract.check_enum(channel.record_wrapper, RECORD_WRAPPERS, f"{member}.recordWrapperType")
            contract.check_enum(channel.compression, COMPRESSIONS, f"{member}.compressionType")
            _check_channel(channel, sources[name])
            resolved[name] = channel
        _check_fifo_names(resolved)
        return resolved


def _check_fifo_names(channels: Mapping[str, ChannelInput]) -> None:
    """Refuse a channel directory that has the name of another channel's Pipe FIFO
    (``<channel>_<epoch>``): both would be the same path under ``/opt/ml/input/data``."""
    for name, channel in channels.items():
        if not channel.is_pipe:
            continue
        for other, found in channels.items():
            epoch = other[len(name) + 1:] if other.startswith(name + "_") else ""
            if not found.is_pipe and epoch.isdigit() and epoch.isascii():
                raise ConfigError(f"channel {other!r} is a directory with the name of Pipe channel"
                                  f" {name!r}'s FIFO for epoch {int(epoch)}; rename one of them")


def _check_channel(channel: ChannelInput, source: Path) -> None:
    where = f"channel {channel.name!r} ({channel.input_mode} mode)"
    if channel.attribute_names is not None:
        manifest.check_attribute_names(channel.name, channel.attribute_names)
        if not channel.is_pipe:
            raise ConfigError(f"{where}: AugmentedManifestFile can only be used if the Channel's input"
                              " mode is Pipe; add --channel-input-mode"
                              f" {channel.name}=Pipe")
        if not source.is_file():
            raise ConfigError(f"{where}: an AugmentedManifestFile channel is one JSON-lines manifest"
                              f" file, and {source} is not a file")
        if channel.manifest_root is not None and not channel.manifest_root.is_dir():
            raise ConfigError(f"channel {channel.name!r}: manifest_root {channel.manifest_root} is"
                              " not a directory")
    elif channel.manifest_root is not None:
        raise ConfigError(f"channel {channel.name!r}: manifest_root applies to an augmented"
                          " manifest channel only (with attribute_names)")
    if not channel.is_pipe and channel.compression != "None":
        raise ConfigError(f"{where}: CompressionType is used only in Pipe input mode. In"
                          f" {channel.input_mode} mode, leave this field unset or set it to None.")
    if not channel.is_pipe and channel.record_wrapper != "None":
        raise ConfigError(f"{where}: RecordWrapperType RecordIO is used only in Pipe input mode. In"
                          f" {channel.input_mode} mode, leave this field unset or set it to None.")


def _seed(name: str, text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{option} {name}={text}: ShuffleConfig.Seed must be an integer") from None
    if not LONG[0] <= value <= LONG[1]:
        raise ConfigError(f"{option} {name}={text}: ShuffleConfig.Seed must fit in 64 bits")
    return value


def _toml_value(path: Path, channel: str, key: str, value: object) -> Any:
    where = f"{path}: train.channels.{channel}.{key}"
    if key == "shuffle_seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer")
        return _seed(channel, str(value), "shuffle_seed")
    if key == "manifest_root":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a directory path")
        return path.parent / Path(value).expanduser()
    if key == "attribute_names":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return value
