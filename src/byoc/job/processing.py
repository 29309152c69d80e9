"""One processing job definition, run locally or on SageMaker (``CreateProcessingJob``).

A :class:`ProcessingJobDefinition` is to a processing job what :class:`~byoc.job.JobDefinition`
is to a training job: everything the job is apart from where it runs (its inputs and outputs
with their container paths and delivery settings, the container's entrypoint and arguments, the
instances, volume, environment and time limit). :meth:`ProcessingJobDefinition.processing_request`
turns it into the ``CreateProcessingJob`` request, given only what differs between runs (the job
name, image, role, instance type and the S3 URIs of local inputs and outputs);
:meth:`ProcessingJobDefinition.local_request` is the same request for a local run (``file://``
URIs, instance type ``local``), the document a local run writes as
``/opt/ml/config/processingjobconfig.json``. :meth:`ProcessingJobDefinition.validate` is the one
check of CreateProcessingJob's rules, against the limits in :mod:`byoc.job.limits`.
:func:`processing_from_options` builds one from the command line's options.

An input's source and an output's destination are each a local path or an ``s3://`` URI: a
SageMaker run uploads a local input first (and gives a local output an S3 prefix), a local run
refuses ``s3://`` ones.

Nothing here talks to AWS or Docker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import contract
from ..errors import ConfigError
from .definition import LOCAL_INSTANCE_TYPE, LOCAL_ROLE, check_job_name, is_s3
from .limits import (
    DEFAULT_MAX_RUNTIME,
    DEFAULT_VOLUME_GB,
    ENV_NAME,
    JOB_NAME,
    MAX_APP_ITEM,
    MAX_APP_ITEMS,
    MAX_ENVIRONMENT,
    MAX_PROCESSING_ENV_TEXT,
    MAX_PROCESSING_INPUTS,
    MAX_PROCESSING_INSTANCES,
    MAX_PROCESSING_LOCAL_PATH,
    MAX_PROCESSING_OUTPUTS,
    MAX_PROCESSING_RUNTIME,
    MAX_S3_URI,
    MAX_VOLUME_GB,
    PROCESSING_COMPRESSIONS,
    PROCESSING_DISTRIBUTIONS,
    PROCESSING_INPUT_MODES,
    PROCESSING_NAME,
    PROCESSING_ROOT,
    PROCESSING_S3_DATA_TYPES,
    UPLOAD_MODES,
)
from .sources import seconds

#: Where inputs and outputs go when their option names no container path.
INPUT_ROOT = f"{PROCESSING_ROOT}/input"
OUTPUT_ROOT = f"{PROCESSING_ROOT}/output"
#: ``--code FILE``: the input's name and container folder, as the SageMaker SDK's
#: ``ScriptProcessor`` puts it (the program is run as ``entrypoint + [CODE_PATH/<file>]``).
CODE_INPUT = "code"
CODE_PATH = f"{INPUT_ROOT}/{CODE_INPUT}"
INPUT_FORM = f"NAME=PATH[:{PROCESSING_ROOT}/...]"
OUTPUT_FORM = f"NAME=DESTINATION[:{PROCESSING_ROOT}/...]"


@dataclass(frozen=True)
class ProcessingInput:
    """``ProcessingInputs[i]`` (an ``S3Input``): *source* is a local file or folder (uploaded
    before a SageMaker run) or an ``s3://`` URI (used as given); *local_path* is where the
    container finds it (default ``/opt/ml/processing/input/<name>``)."""

    name: str
    source: str
    local_path: str = ""
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    compression: str = "None"
    s3_data_type: str = "S3Prefix"

    def __post_init__(self) -> None:
        if not self.local_path:
            object.__setattr__(self, "local_path", f"{INPUT_ROOT}/{self.name}")

    @property
    def remote(self) -> bool:
        return is_s3(self.source)

    def request(self, uri: str) -> dict[str, Any]:
        """The ``ProcessingInputs`` entry with *uri* as ``S3Uri``."""
        return {"InputName": self.name, "S3Input": {
            "S3Uri": uri, "LocalPath": self.local_path, "S3DataType": self.s3_data_type,
            "S3InputMode": self.input_mode, "S3DataDistributionType": self.distribution,
            "S3CompressionType": self.compression}}

    def local_uri(self) -> str:
        """``file://`` URI of a local source (a folder's ends in ``/``); an ``s3://`` one as given."""
        if self.remote:
            return self.source
        path = Path(self.source).resolve()
        return path.as_uri() + ("/" if path.is_dir() else "")


@dataclass(frozen=True)
class ProcessingOutput:
    """``ProcessingOutputConfig.Outputs[i]`` (an ``S3Output``): what the container leaves in
    *local_path* (default ``/opt/ml/processing/output/<name>``) goes to *destination*, a local
    folder or an ``s3://`` URI."""

    name: str
    destination: str
    local_path: str = ""
    upload_mode: str = "EndOfJob"

    def __post_init__(self) -> None:
        if not self.local_path:
            object.__setattr__(self, "local_path", f"{OUTPUT_ROOT}/{self.name}")

    @property
    def remote(self) -> bool:
        return is_s3(self.destination)

    def request(self, uri: str) -> dict[str, Any]:
        """The ``ProcessingOutputConfig.Outputs`` entry with *uri* as ``S3Uri``."""
        return {"OutputName": self.name, "S3Output": {
            "S3Uri": uri, "LocalPath": self.local_path, "S3UploadMode": self.upload_mode}}

    def local_uri(self) -> str:
        """``file://`` URI of a local destination folder; an ``s3://`` one as given."""
        if self.remote:
            return self.destination
        return Path(self.destination).resolve().as_uri() + "/"


@dataclass(frozen=True)
class ProcessingJobDefinition:
    """A processing job apart from where it runs (see the module docstring). Checked when made."""

    base_name: str
    inputs: tuple[ProcessingInput, ...] = ()
    outputs: tuple[ProcessingOutput, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    arguments: tuple[str, ...] | None = None
    instance_count: int = 1
    volume_gb: int = DEFAULT_VOLUME_GB
    environment: Mapping[str, str] = field(default_factory=dict)
    max_runtime: int = DEFAULT_MAX_RUNTIME
    #: The ``--code FILE`` given, if any; its input (:data:`CODE_INPUT`) is in :attr:`inputs`.
    code: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def input(self, name: str) -> ProcessingInput:
        for item in self.inputs:
            if item.name == name:
                return item
        raise KeyError(name)

    def output(self, name: str) -> ProcessingOutput:
        for item in self.outputs:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def local_inputs(self) -> tuple[ProcessingInput, ...]:
        return tuple(item for item in self.inputs if not item.remote)

    @property
    def local_outputs(self) -> tuple[ProcessingOutput, ...]:
        return tuple(item for item in self.outputs if not item.remote)

    def validate(self) -> None:
        """Refuse what CreateProcessingJob would refuse (and what byoc cannot run). :raises ConfigError:"""
        if not JOB_NAME.fullmatch(self.base_name):
            raise ConfigError(f"invalid job name {self.base_name!r}: 1-63 letters, digits and"
                              " hyphens, starting and ending with a letter or digit")
        if len(self.inputs) > MAX_PROCESSING_INPUTS:
            raise ConfigError(f"{len(self.inputs)} inputs (--input, --code); a processing job"
                              f" takes at most {MAX_PROCESSING_INPUTS}")
        if len(self.outputs) > MAX_PROCESSING_OUTPUTS:
            raise ConfigError(f"{len(self.outputs)} outputs (--output); a processing job takes"
                              f" at most {MAX_PROCESSING_OUTPUTS}")
        seen: dict[str, str] = {}
        for option, name in [*((self._option(i), i.name) for i in self.inputs),
                             *(("--output", o.name) for o in self.outputs)]:
            if name in seen:
                raise ConfigError(f"{option} {name}: the name {name!r} is taken by {seen[name]}"
                                  " (input and output names must all differ)")
            seen[name] = f"{option} {name}"
        for item in self.inputs:
            self._check_input(item)
        for out in self.outputs:
            self._check_output(out)
        self._check_paths()
        self._check_app()
        if not 1 <= self.instance_count <= MAX_PROCESSING_INSTANCES:
            raise ConfigError(f"--instance-count {self.instance_count}: InstanceCount takes 1 to"
                              f" {MAX_PROCESSING_INSTANCES}")
        if not 1 <= self.volume_gb <= MAX_VOLUME_GB:
            raise ConfigError(f"--volume-size {self.volume_gb}: VolumeSizeInGB takes 1 to"
                              f" {MAX_VOLUME_GB}")
        if not 1 <= self.max_runtime <= MAX_PROCESSING_RUNTIME:
            raise ConfigError(f"--max-run {self.max_runtime}: a processing job's"
                              f" MaxRuntimeInSeconds takes 1 to {MAX_PROCESSING_RUNTIME} (9 days)")
        if len(self.environment) > MAX_ENVIRONMENT:
            raise ConfigError(f"--env: {len(self.environment)} environment variables; a"
                              f" processing job takes at most {MAX_ENVIRONMENT}")
        for key, value in self.environment.items():
            if not ENV_NAME.fullmatch(key) or len(key) > MAX_PROCESSING_ENV_TEXT:
                raise ConfigError(f"--env {key[:40]!r}: names are [a-zA-Z_][a-zA-Z0-9_]*, at"
                                  f" most {MAX_PROCESSING_ENV_TEXT} characters")
            if not isinstance(value, str) or len(value) > MAX_PROCESSING_ENV_TEXT:
                raise ConfigError(f"--env {key}: a value is text of at most"
                                  f" {MAX_PROCESSING_ENV_TEXT} characters")

    def _option(self, item: ProcessingInput) -> str:
        return "--code" if self.code is not None and item.name == CODE_INPUT else "--input"

    def _check_input(self, item: ProcessingInput) -> None:
        where = f"{self._option(item)} {item.name}"
        _check_name(item.name, where)
        for value, allowed, option in ((item.input_mode, PROCESSING_INPUT_MODES, "--input-mode"),
                                       (item.distribution, PROCESSING_DISTRIBUTIONS, "--distribution"),
                                       (item.compression, PROCESSING_COMPRESSIONS, "S3CompressionType"),
                                       (item.s3_data_type, PROCESSING_S3_DATA_TYPES, "S3DataType")):
            if value not in allowed:
                raise ConfigError(f"{option} {item.name}={value}: use {' or '.join(allowed)}")
        if item.compression == "Gzip" and item.input_mode != "Pipe":
            raise ConfigError(f"{where}: S3CompressionType Gzip needs Pipe input mode (add"
                              f" --input-mode {item.name}=Pipe)")
        _check_location(item.source, where, "source")
        if not item.remote:
            source = Path(item.source)
            if not source.exists():
                raise ConfigError(f"{where}: {item.source} does not exist")
            if item.s3_data_type == "ManifestFile" and not source.is_file():
                raise ConfigError(f"{where}: a ManifestFile input is one manifest file, and"
                                  f" {item.source} is not a file")

    def _check_output(self, out: ProcessingOutput) -> None:
        where = f"--output {out.name}"
        _check_name(out.name, where)
        if out.upload_mode not in UPLOAD_MODES:
            raise ConfigError(f"--upload-mode {out.name}={out.upload_mode}: use"
                              f" {' or '.join(UPLOAD_MODES)}")
        _check_location(out.destination, where, "destination")
        if not out.remote and Path(out.destination).exists() and not Path(out.destination).is_dir():
            raise ConfigError(f"{where}: {out.destination} is a file; an output goes to a folder")

    def _check_paths(self) -> None:
        """Every LocalPath absolute, below /opt/ml/processing/, and none inside another."""
        paths: list[tuple[str, PurePosixPath]] = []
        root = PurePosixPath(PROCESSING_ROOT)
        for where, text in [*((f"{self._option(i)} {i.name}", i.local_path) for i in self.inputs),
                            *((f"--output {o.name}", o.local_path) for o in self.outputs)]:
            path = PurePosixPath(text)
            if not text.startswith("/") or ".." in path.parts or root not in path.parents:
                raise ConfigError(f"{where}: container path {text!r} must be a folder below"
                                  f" {PROCESSING_ROOT}/")
            if len(text) > MAX_PROCESSING_LOCAL_PATH:
                raise ConfigError(f"{where}: container path {text[:40]}... is longer than"
                                  f" {MAX_PROCESSING_LOCAL_PATH} characters")
            for other, taken in paths:
                if path == taken or taken in path.parents or path in taken.parents:
                    raise ConfigError(f"{where}: container path {text} overlaps {other}'s {taken}")
            paths.append((where, path))

    def _check_app(self) -> None:
        for option, items in (("--entrypoint", self.entrypoint), ("--argument", self.arguments)):
            if items is None:
                continue
            if not 1 <= len(items) <= MAX_APP_ITEMS:
                raise ConfigError(f"{option}: {len(items)} items; the container takes 1 to"
                                  f" {MAX_APP_ITEMS}")
            for item in items:
                if len(item) > MAX_APP_ITEM:
                    raise ConfigError(f"{option} {item[:40]!r}...: each item takes at most"
                                      f" {MAX_APP_ITEM} characters")
        if self.code is not None:
            if CODE_INPUT not in {i.name for i in self.inputs}:
                raise ConfigError(f"--code {self.code}: its input {CODE_INPUT!r} is missing")
            if not self.entrypoint:
                raise ConfigError("--code needs --entrypoint, the program that runs it (e.g."
                                  " --entrypoint python3)")

    def check_output_folders(self, protected: Mapping[str, Path] | None = None) -> None:
        """Refuse, before the job starts, a local output folder that is not new or empty (nothing
        there is overwritten), or that overlaps a local input, another output's folder or a
        *protected* folder (by what it is, e.g. the job's own directory). Whether it can be
        written is the caller's to check.

        :raises ConfigError:
        """
        seen = [(what, path.resolve()) for what, path in (protected or {}).items()]
        seen += [(f"input {i.name!r}", Path(i.source).resolve()) for i in self.local_inputs]
        for out in self.local_outputs:
            where = f"--output {out.name}"
            folder = Path(out.destination).resolve()
            if folder.is_dir() and any(folder.iterdir()):
                raise ConfigError(f"{where}: {out.destination} is not empty; name a new or empty"
                                  " folder (nothing there is overwritten)")
            for what, path in seen:
                if folder == path or folder.is_relative_to(path) or path.is_relative_to(folder):
                    raise ConfigError(f"{where}: {out.destination} overlaps {what} ({path});"
                                      " give each output a folder of its own")
            seen.append((f"the folder of output {out.name!r}", folder))

    def processing_request(self, *, job_name: str, image: str, role: str, instance_type: str,
                           input_uris: Mapping[str, str], output_uris: Mapping[str, str]
                           ) -> dict[str, Any]:
        """The ``CreateProcessingJob`` request.

        :param input_uris: the ``S3Uri`` of each local input, by name (an ``s3://`` source
            needs none; one given here wins).
        :param output_uris: the same for each local output.
        :raises ConfigError: for an invalid job name, or a local input or output without a URI.
        """
        check_job_name(job_name)
        app: dict[str, Any] = {"ImageUri": image}
        if self.entrypoint is not None:
            app["ContainerEntrypoint"] = list(self.entrypoint)
        if self.arguments is not None:
            app["ContainerArguments"] = list(self.arguments)
        request: dict[str, Any] = {"ProcessingJobName": job_name}
        if self.inputs:
            request["ProcessingInputs"] = [
                item.request(_uri(item.name, item.source, item.remote, input_uris, "input"))
                for item in self.inputs]
        if self.outputs:
            request["ProcessingOutputConfig"] = {"Outputs": [
                out.request(_uri(out.name, out.destination, out.remote, output_uris, "output"))
                for out in self.outputs]}
        request.update({
            "ProcessingResources": {"ClusterConfig": {
                "InstanceCount": self.instance_count, "InstanceType": instance_type,
                "VolumeSizeInGB": self.volume_gb}},
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_runtime},
            "AppSpecification": app,
            "RoleArn": role,
        })
        if self.environment:
            request["Environment"] = dict(self.environment)
        return request

    def local_request(self, *, job_name: str, image: str | None) -> dict[str, Any]:
        """The same request for a local run, as ``/opt/ml/config/processingjobconfig.json``
        holds it: ``file://`` URIs for local inputs and outputs, instance type ``local``, no role
        (:data:`LOCAL_ROLE`), and the ``ProcessingJobArn`` the SageMaker SDK's local mode also
        writes there (byoc's is a local ARN, as a local training job's). *image* None (the
        process backend) is named ``(process backend)``."""
        request = self.processing_request(
            job_name=job_name, image=image or "(process backend)", role=LOCAL_ROLE,
            instance_type=LOCAL_INSTANCE_TYPE,
            input_uris={item.name: item.local_uri() for item in self.local_inputs},
            output_uris={out.name: out.local_uri() for out in self.local_outputs})
        return {"ProcessingJobArn": contract.arn("processing-job", job_name), **request}

    def local_gaps(self) -> list[str]:
        """The settings a local run cannot honour, as the SageMaker SDK's local mode refuses
        them (Pipe input, ShardedByS3Key, compressed input, Continuous upload, manifest files)."""
        gaps = []
        for item in self.inputs:
            gaps += [f"{label} (input {item.name!r})" for refused, label in (
                (item.input_mode == "Pipe", "S3InputMode Pipe"),
                (item.distribution == "ShardedByS3Key", "S3DataDistributionType ShardedByS3Key"),
                (item.compression != "None", f"S3CompressionType {item.compression}"),
                (item.s3_data_type == "ManifestFile", "S3DataType ManifestFile")) if refused]
        gaps += [f"S3UploadMode Continuous (output {out.name!r})" for out in self.outputs
                 if out.upload_mode == "Continuous"]
        return gaps


def _uri(name: str, location: str, remote: bool, uris: Mapping[str, str], kind: str) -> str:
    if name in uris:
        return uris[name]
    if remote:
        return location
    raise ConfigError(f"{kind} {name!r} ({location}) has no S3 URI yet: upload it first")


def _check_name(name: str, where: str) -> None:
    if not PROCESSING_NAME.fullmatch(name):
        raise ConfigError(f"{where}: invalid name {name!r}: 1 to 64 letters, digits, '.', '-'"
                          " and '_', starting with a letter or digit")


def _check_location(location: str, where: str, what: str) -> None:
    """A local path or an ``s3://bucket/...`` URI, as CreateProcessingJob's S3Uri takes it."""
    if not location.strip():
        raise ConfigError(f"{where}: the {what} is empty; give a local path or an s3:// URI")
    if is_s3(location):
        if not location[len("s3://"):].split("/")[0] or len(location) > MAX_S3_URI:
            raise ConfigError(f"{where}: {location} is not an s3://BUCKET/KEY URI of at most"
                              f" {MAX_S3_URI} characters")
    elif location.startswith(("s3:", "file:", "http:", "https:")):
        raise ConfigError(f"{where}: {location}: use a local path or an s3:// URI")


def split_location(text: str) -> tuple[str, str | None]:
    """``PATH[:/container/path]`` -> ``(PATH, container path or None)``: the container path
    follows the last ``:`` and starts with ``/``; the ``:`` of a URI scheme (``s3://``) is no
    separator."""
    head, sep, tail = text.rpartition(":")
    if not sep or not head or not tail.startswith("/"):
        return text, None
    if tail.startswith("//") and head.isalnum():  # s3://bucket/..., with no container path
        return text, None
    return head, tail


def _named(values: Sequence[str], option: str, form: str) -> dict[str, str]:
    """``NAME=VALUE`` items -> ``{NAME: VALUE}``, each NAME once."""
    found: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"{option} takes {form}, got {item!r}")
        if name in found:
            raise ConfigError(f"{option} names {name!r} twice")
        found[name] = value
    return found


def _per_name(values: Sequence[str], option: str, allowed: Sequence[str],
              names: Sequence[str], kind: str) -> dict[str, str]:
    choice = " or ".join(allowed)
    found = _named(values, option, f"NAME={'|'.join(allowed)}")
    for name, value in found.items():
        if value not in allowed:
            raise ConfigError(f"{option} {name}={value}: use {choice}")
        if name not in names:
            raise ConfigError(f"{option} {name}={value}: no {kind} {name!r} (the {kind}s are"
                              f" {', '.join(names) or 'none'})")
    return found


def processing_from_options(*, base_name: str, inputs: Sequence[str], outputs: Sequence[str],
                            code: str | None, entrypoint: Sequence[str],
                            arguments: Sequence[str], instance_count: int,
                            distributions: Sequence[str], input_modes: Sequence[str],
                            upload_modes: Sequence[str], env: Sequence[str],
                            max_run: str | None,
                            environment_from_project: Mapping[str, str] | None = None,
                            volume_gb: int = DEFAULT_VOLUME_GB) -> ProcessingJobDefinition:
    """The definition the command line's options describe (``byoc local process`` and
    ``byoc sagemaker process`` take the same).

    ``--input NAME=PATH[:/opt/ml/processing/...]`` and ``--output NAME=DESTINATION[:...]``
    (default container paths ``/opt/ml/processing/input/NAME`` and ``.../output/NAME``);
    ``--input-mode NAME=File|Pipe``, ``--distribution NAME=FullyReplicated|ShardedByS3Key`` and
    ``--upload-mode NAME=EndOfJob|Continuous`` per input or output; ``--env K=V`` over
    *environment_from_project*; ``--max-run`` a duration. ``--code FILE`` becomes the input
    ``code`` at :data:`CODE_PATH` and the entrypoint ``--entrypoint ... + [CODE_PATH/FILE]``, as
    the SageMaker SDK's ``ScriptProcessor`` runs a script.

    :raises ConfigError: naming the option, for anything malformed or refused by
        :meth:`ProcessingJobDefinition.validate`.
    """
    built_inputs: list[ProcessingInput] = []
    for name, rest in _named(inputs, "--input", INPUT_FORM).items():
        source, target = split_location(rest)
        built_inputs.append(ProcessingInput(name, source, target or ""))
    built_outputs = []
    for name, rest in _named(outputs, "--output", OUTPUT_FORM).items():
        destination, target = split_location(rest)
        built_outputs.append(ProcessingOutput(name, destination, target or ""))
    input_names = [item.name for item in built_inputs]
    modes = _per_name(input_modes, "--input-mode", PROCESSING_INPUT_MODES, input_names, "input")
    shards = _per_name(distributions, "--distribution", PROCESSING_DISTRIBUTIONS, input_names,
                       "input")
    uploads = _per_name(upload_modes, "--upload-mode", UPLOAD_MODES,
                        [out.name for out in built_outputs], "output")
    built_inputs = [ProcessingInput(item.name, item.source, item.local_path,
                                    input_mode=modes.get(item.name, "File"),
                                    distribution=shards.get(item.name, "FullyReplicated"))
                    for item in built_inputs]
    built_outputs = [ProcessingOutput(out.name, out.destination, out.local_path,
                                      upload_mode=uploads.get(out.name, "EndOfJob"))
                     for out in built_outputs]
    command = tuple(entrypoint) or None
    if code is not None:
        if CODE_INPUT in input_names:
            raise ConfigError(f"--code {code}: the input name {CODE_INPUT!r} is taken by --input"
                              f" {CODE_INPUT}; rename that input")
        if command is None:
            raise ConfigError("--code needs --entrypoint, the program that runs it (e.g."
                              " --entrypoint python3)")
        file_name = _code_file(code)
        built_inputs.append(ProcessingInput(CODE_INPUT, code, CODE_PATH))
        command = (*command, f"{CODE_PATH}/{file_name}")
    environment = {**(environment_from_project or {}), **_named_env(env)}
    return ProcessingJobDefinition(
        base_name=base_name, inputs=tuple(built_inputs), outputs=tuple(built_outputs),
        entrypoint=command, arguments=tuple(arguments) or None, instance_count=instance_count,
        volume_gb=volume_gb, environment=environment,
        max_runtime=seconds(max_run, "--max-run") if max_run is not None else DEFAULT_MAX_RUNTIME,
        code=code)


def _code_file(code: str) -> str:
    """The file name of ``--code`` (a local file or an ``s3://`` object). :raises ConfigError:"""
    if is_s3(code):
        bucket, _, key = code[len("s3://"):].partition("/")
        if not bucket or not key or key.endswith("/"):
            raise ConfigError(f"--code {code}: name one object (s3://BUCKET/KEY), not a prefix")
        return key.rsplit("/", 1)[-1]
    path = Path(code)
    if not code.strip() or not path.exists():
        raise ConfigError(f"--code {code}: no such file")
    if not path.is_file():
        raise ConfigError(f"--code {code}: not a file; give the one script to run")
    return path.name


def _named_env(values: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env takes KEY=VALUE, got {item!r}")
        found[key] = value
    return found
