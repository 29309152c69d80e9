"""Each channel's input settings, from options and ``byoc.toml``, as channel definitions checked by
the job's one channel check (:func:`byoc.job.definition.check_channels`).

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

from ..errors import ConfigError
from ..project import ProjectConfig
from .definition import ChannelDefinition, check_channels
from .limits import SEED_RANGE

_TOML_KEYS = ("input_mode", "record_wrapper", "compression", "shuffle_seed", "attribute_names",
              "manifest_root")


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

    def resolve(self, sources: Mapping[str, Path]) -> dict[str, ChannelDefinition]:
        """Every channel's settings, its input mode resolved (the job's where it names none).

        :raises ConfigError: with CreateTrainingJob's reason for a combination it refuses.
        """
        mode = self.input_mode or "File"
        for option, values in (("--channel-input-mode", self.channel_modes),
                               ("--record-wrapper", self.record_wrappers),
                               ("--compression", self.compressions), ("--shuffle", self.shuffle_seeds),
                               ("--attribute-names", self.attribute_names),
                               ("manifest_root", self.manifest_roots)):
            for name in values:
                if name not in sources:
                    raise ConfigError(f"{option} names channel {name!r}, which is not a channel")
        channels = tuple(ChannelDefinition(
            name, str(sources[name]), input_mode=self.channel_modes.get(name, mode),
            record_wrapper=self.record_wrappers.get(name),
            compression=self.compressions.get(name),
            shuffle_seed=self.shuffle_seeds.get(name),
            attribute_names=self.attribute_names.get(name),
            manifest_root=self.manifest_roots.get(name)) for name in sorted(sources))
        check_channels(channels, mode)
        return {channel.name: channel for channel in channels}


def _seed(name: str, text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{option} {name}={text}: ShuffleConfig.Seed must be an integer") from None
    if not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
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
