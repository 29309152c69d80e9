"""Run any image on a Docker engine, as SageMaker would.

Training: one container per host, named by host (``algo-1`` ..) on a private
bridge network, the host's tree bind-mounted at /opt/ml and each channel
mounted read-only over it. Serving: ``serve`` with the model mounted
read-only and port 8080 published on 127.0.0.1 only. Every container and
network is removed afterwards, also on failure and interrupt.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._docker import docker_client
from ..errors import DockerUnavailableError, ImageNotFoundError, PortInUseError, ServeError
from .base import LogPump, LogSink, ServeSpec, TrainSpec, supervise

CONTAINER_ROOT = "/opt/ml"
LABEL = "com.byoc.job"


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
            self._client = docker_client(self.environ)
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
        try:
            for host in spec.hosts:
                volumes = {str(host.root): {"bind": CONTAINER_ROOT, "mode": "rw"}}
                for channel, source in host.channels.items():
                    volumes[str(source)] = {"bind": f"{CONTAINER_ROOT}/input/data/{channel}",
                                            "mode": "ro"}
                container = client.containers.create(
                    self.image, command=["train"], name=f"byoc-{spec.job_name}-{host.host}-{suffix}",
                    hostname=host.host, environment=dict(spec.env), volumes=volumes,
                    network=network.name, labels={LABEL: spec.job_name},
                    networking_config={network.name: client.api.create_endpoint_config(
                        aliases=[host.host])},
                    **self._devices(),
                )
                runs[host.host] = ContainerRun(container, LogPump(
                    host.host, log, spec.log_dir / f"{host.host}.log"))
            for run in runs.values():
                run.container.start()
                run.pump.start(run.container.logs(stream=True, follow=True))
            return supervise(runs, spec.grace_seconds)
        except docker.errors.APIError as exc:
            raise DockerUnavailableError(f"Docker refused the job: {exc.explanation or exc}"
                                         + self._gpu_hint(exc)) from exc
        finally:
            for run in runs.values():
                run.remove()
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
                volumes={str(spec.model_dir): {"bind": f"{CONTAINER_ROOT}/model", "mode": "ro"}},
                ports={"8080/tcp": ("127.0.0.1", spec.port)}, labels={LABEL: name},
                **self._devices(),
            )
        except docker.errors.APIError as exc:
            raise ServeError(f"Docker refused to create the server: {exc.explanation or exc}") from exc
        server = ContainerServer(container, LogPump("serve", log), url=f"http://127.0.0.1:{spec.port}")
        try:
            container.start()
        except docker.errors.APIError as exc:
            server.remove()
            text = str(exc.explanation or exc)
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
