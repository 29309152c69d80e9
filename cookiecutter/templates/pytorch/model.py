"""Yours: the model. The one module to replace for another algorithm.

``train`` and ``serve`` use only the names below; everything else in this file
is this example's own business.

Must define:

``HYPERPARAMETERS: dict[str, Spec]``
    The hyperparameters ``fit`` accepts, with types, ranges and defaults
    (``Int``, ``Float``, ``Bool``, ``Choice`` from hyperparameters.py). A job
    sending any other name fails with the list of valid ones.
``fit(training: Table, validation: Table | None, job: Job) -> Model``
    Train on the data ``dataset.read`` returned. ``job.params`` holds the typed
    hyperparameters; ``job.report(metrics, channel, epoch)`` prints metrics
    during training; ``job.checkpoint_dir`` (resume from it, save to it) and
    ``job.previous_model_dir`` (a model to start from: incremental training)
    are None when the job has none; ``job.channels`` gives every channel, for
    a model that streams its own epochs (see channels.py).
``save(model: Model, model_dir: Path) -> None``
    Write the model's files into the directory *model_dir*, under their final
    names (train then moves them into /opt/ml/model).
``load(model_dir: Path) -> Model``
    Read back what ``save`` wrote into the directory *model_dir*: /opt/ml/model, or
    on a multi-model endpoint each model's own folder, once per model and worker.
``predict(model: Model, features: np.ndarray) -> np.ndarray``
    One prediction per row of the 2-d float array *features*.
``metrics(model: Model, data: Table) -> dict[str, float]``
    Scores printed after training for each channel, as ``<channel>:<name>=<value>;``.

May define:

``n_features(model: Model) -> int``
    Request rows of another width get a 400 (not checked without it).
``FORK_SAFE: bool`` (default False)
    True when ``load`` starts no threads, so serve may load the model once and
    fork its workers from that copy (less memory). Libraries such as XGBoost,
    PyTorch or anything using OpenMP are not fork-safe: leave it False.
``ACCEPTS_MISSING: bool`` (default False)
    True when ``predict`` takes NaN as a missing value; empty CSV cells, NaN
    and JSON null then reach it as NaN instead of being refused with a 400.
``classes(model: Model) -> list[str] | None``
    A classifier's labels (None for a regressor): ``evaluate`` scores a
    classifier with accuracy, precision, recall, F1 and a confusion matrix, a
    regressor with MSE, RMSE, MAE and R² (without it: text predictions mean a
    classifier).
``probabilities(model: Model, features: np.ndarray) -> np.ndarray``
    A classifier's class probabilities, one column per label of ``classes``:
    ``evaluate`` draws ROC curves and computes their AUC from them.

Training is data-parallel across the job's hosts with ``torch.distributed``:
each host reads its part of the data (``S3DataDistributionType:
ShardedByS3Key``), computes the gradient of its rows' share of the loss, and
the hosts sum their gradients (``all_reduce``) before every step, so every
host takes the same step as one host holding all the data would. The first
host in sorted order is the master (rank 0) and writes checkpoints and the
model. gloo on CPU, NCCL when CUDA is available.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from channels import DataError
from dataset import Table
from hyperparameters import Choice, Float, Int, Spec
from job import Job
from optml import OptMl, read_json_object

HYPERPARAMETERS: dict[str, Spec] = {
    "epochs": Int(default=200, min=1, max=1000000),
    "learning_rate": Float(default=0.1, min=1e-9, max=10),
    "momentum": Float(default=0.9, min=0, max=0.999),
    "weight_decay": Float(default=0, min=0),
    "hidden_units": Int(default=16, min=1, max=65536),
    "seed": Int(default=0, min=0),
    # gloo on CPU, nccl on GPUs; the default picks by what the host has
    "backend": Choice(("gloo", "nccl")),
}

#: PyTorch starts threads (OpenMP, intra-op pools): each serving worker loads its own copy.
FORK_SAFE = False
ACCEPTS_MISSING = False


def fit(training: Table, validation: Table | None, job: Job) -> Model:
    """Full-batch training, the gradient summed over every host; resumes from a checkpoint."""
    params = job.params
    torch.manual_seed(params["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cluster = Cluster.start(job, params["backend"] or ("nccl" if device.type == "cuda" else "gloo"))
    try:
        classes = cluster.union(sorted(set(training.labels.tolist())))
        if len(classes) < 2:
            raise DataError("a classifier needs at least 2 classes in the training channel")
        mean, std = cluster.moments(training.features)
        model = Model(network=_network(training.features.shape[1], params["hidden_units"], len(classes)),
                      classes=classes, mean=mean, std=std)
        if job.previous_model_dir is not None:
            model.start_from(load(job.previous_model_dir))
        model.network.to(device)
        optimizer = torch.optim.SGD(model.network.parameters(), lr=params["learning_rate"],
                                    momentum=params["momentum"], weight_decay=params["weight_decay"])
        start = cluster.resume(job.checkpoint_dir, model, optimizer)

        x, y = model.tensors(training, device)
        rows = cluster.sum([float(len(y))])[0]
        checked = model.tensors(validation, device) if validation is not None else None
        for epoch in range(start + 1, params["epochs"] + 1):
            model.network.train()
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model.network(x), y, reduction="sum") / rows
            loss.backward()
            cluster.sum_gradients(model.network)
            optimizer.step()
            report = {"loss": cluster.sum([loss.item()])[0]}
            if checked is not None:
                report_validation = model.evaluate(*checked, cluster)
            if job.is_first_host:
                job.report(report, "training", epoch)
                if checked is not None:
                    job.report(report_validation, "validation", epoch)
                if job.checkpoint_dir is not None:
                    save_checkpoint(job.checkpoint_dir, epoch, model, optimizer)
        model.network.to("cpu")
        model.mean, model.std = model.mean.cpu(), model.std.cpu()
        return model
    finally:
        cluster.stop()


def save(model: Model, model_dir: Path) -> None:
    torch.save(model.state(), model_dir / MODEL_FILE)


def load(model_dir: Path) -> Model:
    # one thread per worker: serve runs a worker per CPU, and single rows gain nothing from more
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    state = torch.load(model_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    return Model.from_state(state)


def predict(model: Model, features: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        scores = model.serve(features)
    # NumPy's argmax takes the first of equal scores (and the first NaN), as torch's does
    return model.labels[scores.numpy().argmax(axis=1)]


def metrics(model: Model, data: Table) -> dict[str, float]:
    return {"accuracy": float((predict(model, data.features) == data.labels).mean())}


def n_features(model: Model) -> int:
    return int(model.mean.shape[0])


def classes(model: Model) -> list[str]:
    return [str(label) for label in model.classes]


def probabilities(model: Model, features: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        scores = model.serve(features)
    return torch.softmax(scores.double(), dim=1).numpy()


# ---- This example's internals: replace everything below with your model's code ----------

#: The file written into the model directory: tensors and plain values (loaded weights_only).
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
#: Written under this suffix, then renamed: SageMaker's checkpoint upload skips such files.
TEMP_SUFFIX = ".sagemaker-ignore"
#: The master's port for torch.distributed (the AWS toolkits use the same one).
MASTER_PORT = 7777
#: How long to wait for every host's name to resolve (SageMaker's DNS may lag).
DNS_WAIT_SECONDS = 900
#: How long a collective may wait for the other hosts.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


def _network(inputs: int, hidden: int, outputs: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, outputs))


@dataclass
class Model:
    network: torch.nn.Module
    classes: list[str]
    mean: torch.Tensor  # per feature, of the training data over every host
    std: torch.Tensor
    # made once, not per request: the classes as an array to index, and (by ``from_state``,
    # for a network that stays on the CPU) the layers as plain calls
    labels: np.ndarray = field(init=False, repr=False, compare=False)
    steps: list[Callable[[torch.Tensor], torch.Tensor]] | None = field(default=None, init=False,
                                                                       repr=False, compare=False)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.classes)

    def scale(self, features: torch.Tensor) -> torch.Tensor:
        return ((features.to(self.mean.device, torch.float64) - self.mean) / self.std).float()

    def serve(self, features: np.ndarray) -> torch.Tensor:
        """``network(scale(features))`` on the CPU, with the same operations at less cost per call.

        The scaling in NumPy (float64 subtraction and division, then float32: what ``scale``
        computes), and the layers called without nn.Module's per-call machinery. A model
        not loaded by ``from_state`` (``fit``'s, on any device) takes the plain path.
        """
        if self.steps is None:
            return self.network(self.scale(torch.from_numpy(features)))
        scaled = ((features - self.mean.numpy()) / self.std.numpy()).astype(np.float32)
        x = torch.from_numpy(scaled)
        for step in self.steps:
            x = step(x)
        return x

    def tensors(self, data: Table, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        index = {label: number for number, label in enumerate(self.classes)}
        unknown = sorted(set(data.labels.tolist()) - index.keys())
        if unknown:
            raise DataError(f"labels {unknown[:5]} are not among the classes {self.classes[:10]}")
        labels = torch.tensor([index[label] for label in data.labels.tolist()], device=device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self.scale(torch.from_numpy(data.features)), labels

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, cluster: Cluster) -> dict[str, float]:
        self.network.eval()
        with torch.no_grad():
            scores = self.network(x)
            loss = torch.nn.functional.cross_entropy(scores, y, reduction="sum").item()
            correct = float((scores.argmax(dim=1) == y).sum().item())
        total_loss, total_correct, rows = cluster.sum([loss, correct, float(len(y))])
        return {"loss": total_loss / rows, "accuracy": total_correct / rows}

    def state(self) -> dict[str, Any]:
        return {"network": {name: value.cpu() for name, value in self.network.state_dict().items()},
                "classes": list(self.classes), "mean": self.mean.cpu(), "std": self.std.cpu(),
                "hidden_units": int(self.network[0].out_features)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Model:
        mean = state["mean"]
        network = _network(int(mean.shape[0]), int(state["hidden_units"]), len(state["classes"]))
        network.load_state_dict(state["network"])
        network.eval()
        model = cls(network=network, classes=list(state["classes"]), mean=mean, std=state["std"])
        model.steps = _steps(network)
        return model

    def start_from(self, previous: Model) -> None:
        """Incremental training: the previous model's weights and scaling, if it fits the data."""
        if previous.classes != self.classes or previous.mean.shape != self.mean.shape:
            raise DataError(f"the previous model has classes {previous.classes} and"
                            f" {previous.mean.shape[0]} features; the data has classes"
                            f" {self.classes} and {self.mean.shape[0]} features")
        try:
            self.network.load_state_dict(previous.network.state_dict())
        except RuntimeError as exc:
            raise DataError(f"the previous model does not fit: {exc}".splitlines()[0]) from None
        self.mean, self.std = previous.mean, previous.std
        print("starting from the previous model", file=sys.stderr, flush=True)


def _steps(network: torch.nn.Module) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The calls ``network(x)`` makes: a Sequential's Linear and ReLU layers as torch functions.

    The parameters are referenced, not copied: ``load_state_dict`` updates them in place (moving
    the network to another device may replace them: ``Model.steps`` is made for a loaded model).
    """
    if not isinstance(network, torch.nn.Sequential):
        return [network]
    steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for layer in network:
        if type(layer) is torch.nn.Linear:
            steps.append(partial(torch.nn.functional.linear, weight=layer.weight, bias=layer.bias))
        elif type(layer) is torch.nn.ReLU and not layer.inplace:
            steps.append(torch.relu)
        else:
            steps.append(layer)
    return steps


def save_checkpoint(directory: Path, epoch: int, model: Model, optimizer: torch.optim.Optimizer) -> None:
    path = directory / CHECKPOINT_FILE
    temporary = path.with_name(path.name + TEMP_SUFFIX)
    torch.save({"epoch": epoch, "model": model.state(), "optimizer": optimizer.state_dict()}, temporary)
    os.replace(temporary, path)


@dataclass
class Cluster:
    """This host's place among the job's hosts; every method works alone too (one host)."""

    rank: int
    size: int
    device: torch.device

    @classmethod
    def start(cls, job: Job, backend: str) -> Cluster:
        hosts = sorted(job.hosts)
        device = torch.device("cuda" if backend == "nccl" else "cpu")
        if len(hosts) == 1:
            return cls(rank=0, size=1, device=device)
        rank, master = hosts.index(job.host), hosts[0]
        for host in hosts:
            _wait_for_name(host)
        interface = _network_interface()
        if interface:
            os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
            os.environ.setdefault("NCCL_SOCKET_IFNAME", interface)
        port = int(os.environ.get("MASTER_PORT", MASTER_PORT))
        print(f"{job.host}: rank {rank} of {len(hosts)}, master {master}:{port}, {backend}",
              file=sys.stderr, flush=True)
        dist.init_process_group(backend, init_method=f"tcp://{master}:{port}", rank=rank,
                                world_size=len(hosts), timeout=COLLECTIVE_TIMEOUT)
        return cls(rank=rank, size=len(hosts), device=device)

    def stop(self) -> None:
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the hosts."""
        if self.size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def union(self, labels: list[str]) -> list[str]:
        """The sorted labels seen on any host (a shard may lack a class)."""
        if self.size == 1:
            return labels
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, labels)
        return sorted({label for found in gathered for label in found})

    def moments(self, features: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of each feature over every host's rows."""
        data = torch.from_numpy(features).to(self.device, torch.float64)
        stats = torch.cat([torch.tensor([float(len(data))], dtype=torch.float64, device=self.device),
                           data.sum(dim=0), (data * data).sum(dim=0)])
        if self.size > 1:
            dist.all_reduce(stats)
        rows, width = stats[0], data.shape[1]
        mean = stats[1:1 + width] / rows
        variance = (stats[1 + width:] / rows - mean * mean).clamp(min=0)
        std = variance.sqrt()
        return mean.cpu(), torch.where(std > 0, std, torch.ones_like(std)).cpu()

    def sum_gradients(self, network: torch.nn.Module) -> None:
        if self.size == 1:
            return
        for parameter in network.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)

    def resume(self, directory: Path | None, model: Model, optimizer: torch.optim.Optimizer) -> int:
        """The epoch to continue after: the master's checkpoint, sent to every host; 0 without."""
        state = None
        if self.rank == 0 and directory is not None and (directory / CHECKPOINT_FILE).exists():
            state = torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        if self.size > 1:
            box = [state]
            dist.broadcast_object_list(box, src=0)
            state = box[0]
        if state is None:
            return 0
        restored = Model.from_state(state["model"])
        if restored.classes != model.classes or restored.mean.shape != model.mean.shape:
            raise DataError(f"the checkpoint's classes {restored.classes} or width do not fit the data")
        model.network.load_state_dict(restored.network.state_dict())
        model.mean, model.std = restored.mean, restored.std
        optimizer.load_state_dict(state["optimizer"])
        print(f"resuming after epoch {state['epoch']} from {CHECKPOINT_FILE}", file=sys.stderr, flush=True)
        return int(state["epoch"])


def _wait_for_name(host: str) -> None:
    deadline = time.monotonic() + DNS_WAIT_SECONDS
    delay = 0.5
    while True:
        try:
            socket.gethostbyname(host)
            return
        except OSError:
            if delay == 0.5:
                print(f"waiting for host {host!r} to resolve (up to {DNS_WAIT_SECONDS} s)",
                      file=sys.stderr, flush=True)
            if time.monotonic() > deadline:
                raise DataError(f"host {host!r} did not resolve within {DNS_WAIT_SECONDS} s") from None
            time.sleep(delay)
            delay = min(delay * 2, 30)


def _network_interface() -> str | None:
    """resourceconfig.json's network_interface_name, when this machine has that interface."""
    try:
        name = read_json_object(OptMl.from_env().resourceconfig_json).get("network_interface_name")
    except (OSError, ValueError):
        return None
    return name if isinstance(name, str) and Path("/sys/class/net", name).exists() else None
