"""Run any image on a Docker engine, as SageMaker would.

Training: one container per host on a private bridge network, in the network
namespace of a placeholder that holds the host's name (``algo-1`` ..) until
the job ends; /opt/ml/input/config, /opt/ml/input/data, each channel,
/opt/ml/model, /opt/ml/output and /opt/ml/checkpoints bind-mounted one by one,
as SageMaker mounts them. Serving: ``serve`` with the model mounted
read-only and port 8080 published on 127.0.0.1 only. Processing: one container
per host on the same kind of network, the image's ENTRYPOINT/CMD or the job's
ContainerEntrypoint/ContainerArguments, /opt/ml/config and each input mounted
read-only at its LocalPath, /opt/ml/output and each output writable. Every
container and network is removed afterwards, also on failure and interrupt.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import contract
from .._docker import docker_client, explain
from ..errors import DockerUnavailableError, ImageNotFoundError, PortInUseError, ServeError
from .base import (
    HostSpec,
    LogPump,
    LogSink,
    ProcessingHost,
    ProcessingSpec,
    ServeSpec,
    TrainSpec,
    supervise,
)
from .placeholder import placeholder_command

LABEL = "com.byoc.job"


def training_mounts(host: HostSpec, checkpoint_path: str = contract.CHECKPOINT_PATH) -> list[Any]:
    """The binds SageMaker makes, each on its own: config and channels read-only, the data
    directory (where Pipe FIFOs live) read-only, model, output and checkpoints writable.
    Nothing else under /opt/ml is covered, so what the image keeps there stays visible."""
    from docker.types import Mount

    tree = contract.OptMl(host.root)
    binds = [(tree.config_dir, "input/config", True), (tree.data_dir, "input/data", True),
             (tree.model_dir, "model", False), (tree.output_dir, "output", False),
             (tree.checkpoints_dir, "checkpoints", False)]
    binds += [(source, f"input/data/{name}", True) for name, source in sorted(host.channels.items())]
    mounts = [Mount(f"{contract.CONTAINER_ROOT}/{target}", str(source), type="bind",
                    read_only=read_only) for source, target, read_only in binds]
    if host.checkpoints is not None and checkpoint_path != contract.CHECKPOINT_PATH:
        # CheckpointConfig.LocalPath elsewhere than the default
        mounts.append(Mount(checkpoint_path, str(host.checkpoints), type="bind", read_only=False))
    return mounts


def processing_mounts(host: ProcessingHost) -> list[Any]:
    """A processing host's binds: ``/opt/ml/config`` and each input read-only at its LocalPath,
    ``/opt/ml/output`` and each output writable at its LocalPath. Nothing else of the image's
    tree is covered."""
    from docker.types import Mount

    tree, inside = contract.ProcessingTree(host.root), contract.IN_PROCESSING
    mounts = [Mount(inside.config_dir.as_posix(), str(tree.config_dir), type="bind", read_only=True),
              Mount(inside.output_dir.as_posix(), str(tree.output_dir), type="bind",
                    read_only=False)]
    mounts += [Mount(path, str(source), type="bind", read_only=True)
               for path, source in sorted(host.inputs.items())]
    mounts += [Mount(path, str(tree.local_path(path)), type="bind", read_only=False)
               for path in sorted(host.outputs)]
    return mounts


def _each(action: Callable[[Any], object], items: Sequence[Any]) -> None:
    """*action* on every item at once (the engine starts and removes containers in parallel);
    the first exception is raised after all have finished."""
    if len(items) <= 1:
        for item in items:
            action(item)
        return
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()


def _remove(container: Any) -> None:
    import docker.errors

    try:
        container.remove(force=True)
    except docker.errors.APIError:
        pass


def model_volume(model_dir: Path) -> dict[str, dict[str, str]]:
    """The Docker volume that mounts *model_dir* read-only where serve reads the model."""
    return {str(model_dir): {"bind": contract.IN_CONTAINER.model_dir.as_posix(), "mode": "ro"}}


@dataclass
class ContainerRun:
    container: Any
    pump: LogPump

    def poll(self) -> int | None:
        import docker.errors

        try:
            self.container.reload()
        except docker.errors.NotFound:
            return -1
        state = self.container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            return int(state.get("ExitCode", -1))
        return None

    def terminate(self) -> None:
        self._signal("SIGTERM")

    def kill(self) -> None:
        self._signal("SIGKILL")

    def _signal(self, name: str) -> None:
        import docker.errors

        try:
            self.container.kill(signal=name)
        except docker.errors.APIError:
            pass  # it exited meanwhile

    def remove(self) -> None:
        import docker.errors

        try:
            self.container.remove(force=True)
        except docker.errors.APIError:
            pass
        self.pump.join()


@dataclass
class ContainerServer(ContainerRun):
    url: str = ""
    extra: list[Any] = field(default_factory=list)

    def log_tail(self) -> str:
        return self.pump.text()

    def close(self) -> None:
        self.remove()


@dataclass
class DockerBackend:
    """Runs *image* on the engine found from the environment.

    *gpus* (``all``, a count, or ``device=0,1``) gives every container those GPUs,
    as ``docker run --gpus`` does.
    """

    image: str
    environ: Mapping[str, str] | None = None
    name: str = "docker"
    gpus: str | None = None
    _client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client(self.environ, alternative="use --backend process")
            self._check_image()
        return self._client

    def _check_image(self) -> None:
        import docker.errors

        try:
            self._client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise ImageNotFoundError(
                f"image {self.image} is not in the local Docker engine; build it with"
                " `byoc build` (or pull it) first") from None

    def _devices(self) -> dict[str, Any]:
        return {"device_requests": [device_request(self.gpus)]} if self.gpus else {}

    def _gpu_hint(self, exc: Exception) -> str:
        if self.gpus and "device driver" in str(exc):
            return " (--gpus needs an engine with a GPU runtime, such as the NVIDIA Container Toolkit)"
        return ""

    def train(self, spec: TrainSpec, log: LogSink) -> dict[str, int]:
        def create(client: Any, host: HostSpec, name: str, network_mode: str) -> Any:
            return client.containers.create(
                self.image, command=["train"], name=name, environment=dict(spec.env),
                mounts=training_mounts(host, spec.checkpoint_path), network_mode=network_mode,
                labels={LABEL: spec.job_name}, **self._devices())

        return self._run_hosts(spec.job_name, [(host.host, host) for host in spec.hosts], create,
                               log, spec.log_dir, spec.grace_seconds, spec.notify,
                               spec.on_host_failure, spec.stop)

    def process(self, spec: ProcessingSpec, log: LogSink) -> dict[str, int]:
        """A processing job: the image's ENTRYPOINT and CMD, or ContainerEntrypoint and
        ContainerArguments with Docker's override rules (an entrypoint given replaces the
        image's and drops its CMD; arguments given replace CMD)."""
        entrypoint = list(spec.entrypoint) if spec.entrypoint is not None else None
        command = list(spec.arguments) if spec.arguments is not None else None

        def create(client: Any, host: ProcessingHost, name: str, network_mode: str) -> Any:
            return client.containers.create(
                self.image, entrypoint=entrypoint, command=command, name=name,
                environment=dict(spec.env), mounts=processing_mounts(host),
                network_mode=network_mode, labels={LABEL: spec.job_name}, **self._devices())

        return self._run_hosts(spec.job_name, [(host.host, host) for host in spec.hosts], create,
                               log, spec.log_dir, spec.grace_seconds, spec.notify,
                               spec.on_host_failure, spec.stop)

    def _run_hosts(self, job_name: str, hosts: Sequence[tuple[str, Any]],
                   create: Callable[[Any, Any, str, str], Any], log: LogSink, log_dir: Path,
                   grace_seconds: float, notify: Callable[[str], None] | None,
                   on_failure: Callable[[str, int], None] | None,
                   stop: threading.Event | None) -> dict[str, int]:
        """One container per host (made by *create*) on a private network, each in the network
        namespace of a placeholder holding its name for the whole job; supervised to the end,
        then everything removed."""
        import docker.errors

        client = self.client
        suffix = uuid.uuid4().hex[:6]
        network = client.networks.create(f"byoc-{job_name}-{suffix}"[:60], driver="bridge",
                                          labels={LABEL: job_name})
        runs: dict[str, ContainerRun] = {}
        placeholders: list[Any] = []
        try:
            holder = placeholder_command(client, self.image)
            for host, _ in hosts:
                # the host's name and address outlive its program: peers resolve it until the job ends
                placeholders.append(client.containers.create(
                    **holder, name=f"byoc-{job_name}-{host}-net-{suffix}",
                    hostname=host, network=network.name, labels={LABEL: job_name},
                    networking_config={network.name: client.api.create_endpoint_config(
                        aliases=[host])}))
            _each(lambda identity: identity.start(), placeholders)
            for (host, spec), identity in zip(hosts, placeholders, strict=True):
                container = create(client, spec, f"byoc-{job_name}-{host}-{suffix}",
                                   f"container:{identity.id}")
                runs[host] = ContainerRun(container, LogPump(host, log, log_dir / f"{host}.log"))
            _each(lambda run: run.container.start(), list(runs.values()))
            for run in runs.values():
                run.pump.start(run.container.logs(stream=True, follow=True))
            return supervise(runs, grace_seconds, say=notify, on_failure=on_failure, stop=stop)
        except docker.errors.APIError as exc:
            raise DockerUnavailableError(f"Docker refused the job: {explain(exc)}"
                                         + self._gpu_hint(exc)) from exc
        finally:
            # all at once: a placeholder may go while the exited container that used it is removed
            _each(lambda item: item.remove() if isinstance(item, ContainerRun) else _remove(item),
                  [*runs.values(), *placeholders])
            try:
                network.remove()
            except docker.errors.APIError:
                pass

    def has_program(self, name: str) -> bool:
        """Whether the image has *name* on its PATH (asked of its shell; an image without one
        is given the benefit of the doubt: the job itself then says)."""
        import docker.errors

        try:
            self.client.containers.run(
                self.image, entrypoint=["sh", "-c", 'command -v "$0" >/dev/null', name],
                command=[], name=f"byoc-probe-{uuid.uuid4().hex[:8]}", remove=True,
                network_mode="none", labels={LABEL: "probe"})
        except docker.errors.ContainerError:
            return False
        except docker.errors.APIError:
            return True
        return True

    def start_server(self, spec: ServeSpec, log: LogSink) -> ContainerServer:
        import docker.errors

        client = self.client
        name = f"byoc-serve-{spec.port}-{uuid.uuid4().hex[:6]}"
        try:
            container = client.containers.create(
                self.image, command=["serve"], name=name, environment=dict(spec.env),
                volumes=model_volume(spec.model_dir),
                ports={f"{contract.PORT}/tcp": ("127.0.0.1", spec.port)}, labels={LABEL: name},
                **self._devices(),
            )
        except docker.errors.APIError as exc:
            raise ServeError(f"Docker refused to create the server: {explain(exc)}") from exc
        server = ContainerServer(container, LogPump("serve", log), url=f"http://127.0.0.1:{spec.port}")
        try:
            container.start()
        except docker.errors.APIError as exc:
            server.remove()
            text = explain(exc)
            if "address already in use" in text or "port is already allocated" in text:
                raise PortInUseError(f"port {spec.port} on 127.0.0.1 is in use; pick another with"
                                     " --port") from exc
            raise ServeError(f"Docker could not start the server: {text}" + self._gpu_hint(exc)) from exc
        server.pump.start(container.logs(stream=True, follow=True))
        return server

    def image_labels(self, image: str | None = None) -> dict[str, str]:
        """The labels of *image* (default: the backend's).

        :raises ImageNotFoundError: when the engine does not have it.
        """
        import docker.errors

        wanted = image or self.image
        try:
            found = self.client.images.get(wanted)
        except docker.errors.ImageNotFound:
            raise ImageNotFoundError(f"image {wanted} is not in the local Docker engine; build it"
                                     " (or pull it) first") from None
        return dict((found.attrs.get("Config") or {}).get("Labels") or {})

    def run_container(self, options: ContainerOptions, log: LogSink, url: str = "") -> ContainerServer:
        """Create and start one container as *options* say; its log goes to *log* under its name.

        :raises PortInUseError: when a published port is taken.
        :raises ServeError: when Docker refuses to create or start it.
        """
        import docker.errors
        from docker.types import Mount

        client = self.client
        extra: dict[str, Any] = {}
        if options.memory_mb is not None:
            extra["mem_limit"] = f"{options.memory_mb}m"
            extra["memswap_limit"] = f"{options.memory_mb}m"
        if options.network_mode is not None:
            extra["network_mode"] = options.network_mode
        if options.publish:
            extra["ports"] = {f"{inside}/tcp": ("127.0.0.1", outside)
                              for inside, outside in options.publish.items()}
        if options.gpus:
            extra.update(self._devices())
        try:
            container = client.containers.create(
                options.image or self.image, command=list(options.command or []) or None,
                entrypoint=list(options.entrypoint) if options.entrypoint is not None else None,
                name=options.name, environment=dict(options.env), user=options.user,
                read_only=options.read_only, tmpfs=dict(options.tmpfs) or None,
                mounts=[Mount(target, str(source), type="bind", read_only=read_only)
                        for source, target, read_only in options.mounts],
                labels={LABEL: options.name, **options.labels}, **extra)
        except docker.errors.APIError as exc:
            raise ServeError(f"Docker refused to create {options.name}: {explain(exc)}") from exc
        server = ContainerServer(container, LogPump(options.name, log), url=url)
        try:
            container.start()
        except docker.errors.APIError as exc:
            server.remove()
            text = explain(exc)
            if "address already in use" in text or "port is already allocated" in text:
                ports = ", ".join(str(port) for port in options.publish.values())
                raise PortInUseError(f"port {ports} on 127.0.0.1 is in use; pick another with"
                                     " --port") from exc
            raise ServeError(f"Docker could not start {options.name}: {text}"
                             + self._gpu_hint(exc)) from exc
        server.pump.start(container.logs(stream=True, follow=True))
        return server

    def network_holder(self, name: str, publish: Mapping[int, int], log: LogSink) -> ContainerServer:
        """A placeholder that owns one network namespace (and publishes *publish* from it), for
        containers that share it as the containers of one SageMaker model share an instance."""
        holder = placeholder_command(self.client, self.image)
        return self.run_container(ContainerOptions(
            name=name, image=holder["image"], command=None, entrypoint=holder["entrypoint"],
            publish=publish, gpus=False), log)


@dataclass(frozen=True)
class ContainerOptions:
    """How to run one container of a hosting mode (``docker run`` options by name).

    *publish* maps a port inside to a port on 127.0.0.1; *mounts* are ``(source, target,
    read_only)``; *tmpfs* maps a path to its mount options; *network_mode* ``container:<id>``
    shares another container's network namespace; *memory_mb* caps memory (and swap) as
    ``--memory``; *gpus* False runs without the backend's GPUs.
    """

    name: str
    image: str | None = None
    command: Sequence[str] | None = ("serve",)
    entrypoint: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    publish: Mapping[int, int] = field(default_factory=dict)
    user: str | None = None
    read_only: bool = False
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int | None = None
    network_mode: str | None = None
    mounts: Sequence[tuple[Path, str, bool]] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    gpus: bool = True


def device_request(gpus: str) -> Any:
    """``docker run --gpus`` *gpus* as the engine API's DeviceRequest.

    :raises ValueError: for a value that is not ``all``, a positive count or ``device=ID[,ID]``.
    """
    import docker.types

    value = gpus.strip()
    if value == "all":
        return docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    if value.isdigit() and int(value) > 0:
        return docker.types.DeviceRequest(count=int(value), capabilities=[["gpu"]])
    if value.startswith("device="):
        ids = [part.strip() for part in value.removeprefix("device=").split(",") if part.strip()]
        if ids:
            return docker.types.DeviceRequest(device_ids=ids, capabilities=[["gpu"]])
    raise ValueError(f"--gpus takes all, a count or device=ID[,ID...]; got {gpus!r}")
