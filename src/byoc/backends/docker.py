"""Run any image on a Docker engine, as SageMaker would.

Training: one container per host on a private bridge network, in the network
namespace of a placeholder that holds the host's name (``algo-1`` ..) until
the job ends; /opt/ml/input/config, /opt/ml/input/data, each channel,
/opt/ml/model, /opt/ml/output and /opt/ml/checkpoints bind-mounted one by one,
as SageMaker mounts them. Serving: ``serve`` with the model mounted
read-only and port 8080 published on 127.0.0.1 only. Every container and
network is removed afterwards, also on failure and interrupt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import contract
from .._docker import docker_client, explain
from ..errors import DockerUnavailableError, ImageNotFoundError, PortInUseError, ServeError
from .base import HostSpec, LogPump, LogSink, ServeSpec, TrainSpec, supervise
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
        import docker.errors

        client = self.client
        suffix = uuid.uuid4().hex[:6]
        network = client.networks.create(f"byoc-{spec.job_name}-{suffix}"[:60], driver="bridge",
                                          labels={LABEL: spec.job_name})
        runs: dict[str, ContainerRun] = {}
        placeholders: list[Any] = []
        try:
            holder = placeholder_command(client, self.image)
            for host in spec.hosts:
                # the host's name and address outlive its program: peers resolve it until the job ends
                placeholders.append(client.containers.create(
                    **holder, name=f"byoc-{spec.job_name}-{host.host}-net-{suffix}",
                    hostname=host.host, network=network.name, labels={LABEL: spec.job_name},
                    networking_config={network.name: client.api.create_endpoint_config(
                        aliases=[host.host])}))
            _each(lambda identity: identity.start(), placeholders)
            for host, identity in zip(spec.hosts, placeholders, strict=True):
                container = client.containers.create(
                    self.image, command=["train"], name=f"byoc-{spec.job_name}-{host.host}-{suffix}",
                    environment=dict(spec.env),
                    mounts=training_mounts(host, spec.checkpoint_path),
                    network_mode=f"container:{identity.id}", labels={LABEL: spec.job_name},
                    **self._devices())
                runs[host.host] = ContainerRun(container, LogPump(
                    host.host, log, spec.log_dir / f"{host.host}.log"))
            _each(lambda run: run.container.start(), list(runs.values()))
            for run in runs.values():
                run.pump.start(run.container.logs(stream=True, follow=True))
            return supervise(runs, spec.grace_seconds, say=spec.notify,
                             on_failure=spec.on_host_failure, stop=spec.stop)
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
