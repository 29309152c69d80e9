"""Run a byoc project's ``train`` and ``serve`` as plain processes, no Docker.

Each host gets its own /opt/ml tree, passed as ``SAGEMAKER_BASE_DIR``; channel
files are copied in and made read-only, so the program cannot change the
user's data. The programs run in the project's own environment, made from
``container/requirements.txt`` (the file the image installs) by :mod:`byoc.envs`
before the first run. Hosts are not reachable by name: multi-host jobs run, but
programs that talk to their peers need the Docker backend.

Python programs run with this Python; any other program (an R project's
``train`` and ``serve`` are bash scripts that start ``Rscript``) runs as it is,
after a check that its toolchain is on this machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import archive, contract, envs
from ..errors import ConfigError
from ..say import quiet
from .base import HostSpec, LogPump, LogSink, ServeSpec, TrainSpec, supervise

#: The R packages an R project's programs load: to train, and also to serve.
R_TRAIN_PACKAGES = ("jsonlite",)
R_SERVE_PACKAGES = ("jsonlite", "plumber")
R_INSTALL_HINT = ("on Debian: apt-get install r-base-core r-cran-jsonlite r-cran-plumber nginx;"
                  " or use --backend docker")


@dataclass
class ProcessRun:
    process: subprocess.Popen[bytes]
    pump: LogPump

    def poll(self) -> int | None:
        return self.process.poll()

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


@dataclass
class ProcessServer(ProcessRun):
    url: str = ""
    scratch: list[Path] = field(default_factory=list)

    def log_tail(self) -> str:
        return self.pump.text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.process.wait()
        # the process group may still hold children (nginx, gunicorn workers)
        self._signal(signal.SIGKILL)
        self.pump.join()


@dataclass(frozen=True)
class ProcessBackend:
    """Runs ``container/<program>/train`` and ``serve`` in the project's own environment."""

    program_dir: Path
    name: str = "process"
    #: Where the environment's progress and timing are told.
    say: Callable[[str], None] = field(default=quiet, compare=False, repr=False)
    _env: list[envs.PythonEnv] = field(default_factory=list, compare=False, repr=False)

    @property
    def project_root(self) -> Path:
        """The project of ``container/<program>``."""
        return self.program_dir.parent.parent

    def environment(self) -> envs.PythonEnv:
        """The project's environment, built or checked on first use.

        :raises EnvironmentBuildError: when it cannot be built.
        """
        if not self._env:
            self._env.append(envs.prepare(self.project_root, say=self.say))
        return self._env[0]

    def _prepare(self, program: str) -> None:
        """What *program* needs before it starts: R's toolchain, or the project's environment."""
        if is_r_program(self.program_dir):
            check_toolchain(self.program_dir, program)
        else:
            self.environment()

    def python(self) -> str:
        """The interpreter of the project's environment."""
        return str(self.environment().python)

    def train(self, spec: TrainSpec, log: LogSink) -> dict[str, int]:
        self._prepare("train")
        runs: dict[str, ProcessRun] = {}
        try:
            for host in spec.hosts:
                _stage_channels(host)
                env = {**os.environ, **spec.env, contract.BASE_DIR_ENV: str(host.root)}
                runs[host.host] = self._start("train", env, host.host, log,
                                              spec.log_dir / f"{host.host}.log")
            return supervise(runs, spec.grace_seconds, say=spec.notify,
                             on_failure=spec.on_host_failure, stop=spec.stop)
        finally:
            for run in runs.values():
                if run.poll() is None:
                    run.kill()
                run.process.wait()
                run.pump.join()

    def start_server(self, spec: ServeSpec, log: LogSink) -> ProcessServer:
        self._prepare("serve")
        model_dir = spec.root / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        archive.copy_tree(spec.model_dir, model_dir)  # a sparse file's holes stay holes
        env = {**os.environ, **spec.env, contract.BASE_DIR_ENV: str(spec.root),
               contract.BIND_TO_PORT_ENV: str(spec.port), "SERVE_BIND_ADDRESS": "127.0.0.1"}
        run = self._start("serve", env, "serve", log, None)
        return ProcessServer(run.process, run.pump, url=f"http://127.0.0.1:{spec.port}")

    def _start(self, program: str, env: Mapping[str, str], host: str, log: LogSink,
               log_file: Path | None) -> ProcessRun:
        target = self.program_dir / program
        command = program_command(target)
        extra: dict[str, str] = {}
        places = [str(self.program_dir)]
        if command[0] == sys.executable:  # a Python program: the project's own environment
            environment = self.environment()
            command = [str(environment.python), str(target)]
            places.append(str(environment.bin_dir))
            extra["VIRTUAL_ENV"] = str(environment.root)
        # as in the image: the program's directory, then the environment's bin, on PATH
        path = os.pathsep.join([*places, env.get("PATH", os.defpath)])
        process = subprocess.Popen(
            command, env={**env, "PATH": path, **extra},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.program_dir,
        )
        pump = LogPump(host, log, log_file)
        assert process.stdout is not None
        descriptor = process.stdout.fileno()
        pump.start(iter(lambda: os.read(descriptor, 65536), b""))
        return ProcessRun(process, pump)


def _stage_channels(host: HostSpec) -> None:
    """Copy each channel into the host's tree and make the copy read-only."""
    for name, source in host.channels.items():
        target = host.root / "input" / "data" / name
        if target.exists():
            shutil.rmtree(target)
        archive.copy_tree(source, target)
        for path in sorted(target.rglob("*"), reverse=True):
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
        target.chmod(0o555)


def program_command(program: Path) -> list[str]:
    """How to run *program*: a Python script with this Python, anything else as it is."""
    with program.open("rb") as handle:
        first = handle.readline(256)
    if first.startswith(b"#!") and b"python" not in first:
        return [str(program)]
    return [sys.executable, str(program)]


def is_r_program(program_dir: Path) -> bool:
    """Whether *program_dir* holds an R program (byoc's R template: ``*.R`` beside train)."""
    return any(program_dir.glob("*.R"))


def check_toolchain(program_dir: Path, program: str | None = None) -> None:
    """Check that the programs of *program_dir* (or only *program*: train, serve) can run here.

    Without *program* only the interpreter is looked for; with it, also what it loads.

    :raises ConfigError: for an R program when ``Rscript``, the R packages it
        loads or (to serve) nginx are missing, naming what to install.
    """
    if not is_r_program(program_dir):
        return
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise ConfigError(f"{program_dir} holds an R program, but Rscript is not on PATH"
                          f" ({R_INSTALL_HINT})")
    if program is None:
        return
    packages = R_SERVE_PACKAGES if program == "serve" else R_TRAIN_PACKAGES
    probe = ("wanted <- commandArgs(TRUE); "
             "cat(wanted[!vapply(wanted, requireNamespace, logical(1), quietly = TRUE)])")
    try:
        found = subprocess.run([rscript, "--vanilla", "-e", probe, *packages], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run {rscript}: {exc}") from None
    missing = found.stdout.split()
    if found.returncode != 0 or missing:
        named = ", ".join(missing) or (found.stderr.strip().splitlines() or ["Rscript failed"])[-1]
        raise ConfigError(f"Rscript ({rscript}) lacks R packages that {program} needs: {named}"
                          f" ({R_INSTALL_HINT})")
    if program == "serve" and shutil.which("nginx") is None:
        raise ConfigError(f"the R program's serve runs nginx, which is not on PATH ({R_INSTALL_HINT})")
