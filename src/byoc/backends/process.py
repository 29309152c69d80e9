"""Run a byoc project's ``train`` and ``serve`` as plain processes, no Docker.

Each host gets its own /opt/ml tree, passed as ``SAGEMAKER_BASE_DIR``; channel
files are copied in and made read-only, so the program cannot change the
user's data. The programs run in the project's own environment, made from
``container/requirements.txt`` (the file the image installs) by :mod:`byoc.backends.envs`
before the first run. Hosts are not reachable by name: multi-host jobs run, but a
program that talks to its peers (``torch.distributed`` and the like, see
:func:`peer_markers`) is refused at once unless this machine resolves the host names.

A program gets the environment a container would, not byoc's: the job's variables, PATH,
the locale, and a HOME and TMPDIR of its own in a directory beside its /opt/ml tree
(``<host>-tmp`` for a training host, ``tmp`` for a server), removed with it, as a container
has its own /tmp; nothing else of this machine's environment (no AWS credentials, as
SageMaker's role gives none).

Python programs run with this Python; any other program (an R project's
``train`` and ``serve`` are bash scripts that start ``Rscript``) runs as it is,
after a check that its toolchain is on this machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import archive, contract
from ..errors import ConfigError
from ..say import quiet
from . import envs
from .base import (
    HostSpec,
    LogPump,
    LogSink,
    ProcessingSpec,
    ServeSpec,
    TrainSpec,
    supervise,
)

#: The R packages an R project's programs load: to train, and also to serve.
R_TRAIN_PACKAGES = ("jsonlite",)
R_SERVE_PACKAGES = ("jsonlite", "plumber")
#: Variables of this machine's environment a program gets as they are, when set: the locale,
#: the time zone, and where the machine's GPUs and shared and R libraries are.
PASSED_ON = ("LANG", "LANGUAGE", "TZ", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "R_LIBS",
             "R_LIBS_USER", "R_LIBS_SITE")
#: What a program that talks to its peers by host name says (its source is searched).
PEER_MARKERS = re.compile(r"\b(init_process_group|torch\.distributed|MASTER_ADDR|horovod|"
                          r"RabitTracker|xgboost\.collective|dask\.distributed)\b")
HOSTS_FILE = Path("/etc/hosts")
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
        for path in self.scratch:
            _remove(path)


@dataclass(frozen=True)
class ProcessBackend:
    """Runs ``container/<program>/train`` and ``serve`` in the project's own environment."""

    program_dir: Path
    name: str = "process"
    #: Variables every program of this backend gets under the job's, as an image's ENV gives
    #: them to every container (byoc's own environment is not passed on).
    image_env: Mapping[str, str] = field(default_factory=dict, compare=False)
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

    def prepare(self, program: str) -> None:
        """What *program* needs before it starts: R's toolchain, or the project's environment
        (built once). A job calls it before its clock starts, as an instance has its image
        before training begins.

        :raises EnvironmentBuildError: when the environment cannot be built.
        """
        if is_r_program(self.program_dir):
            check_toolchain(self.program_dir, program)
        else:
            self.environment()

    def python(self) -> str:
        """The interpreter of the project's environment."""
        return str(self.environment().python)

    def check_hosts(self, hosts: list[str]) -> None:
        """Refuse, before anything runs, a multi-host job whose program talks to its peers by
        host name when this machine does not resolve those names (processes have no private
        network; the Docker backend gives them one).

        :raises ConfigError: naming the program, the names and the fix.
        """
        if len(hosts) < 2:
            return
        found = peer_markers(self.program_dir)
        if not found:
            return
        missing = [host for host in hosts if host not in hosts_file_names()]
        if not missing:
            return
        where, marker = found
        raise ConfigError(
            f"--instance-count {len(hosts)} on the process backend: {where} talks to its peers by"
            f" host name ({marker}), and {', '.join(missing)} do not resolve on this machine"
            " (processes get no private network to name them on); use --backend docker, or"
            " --instance-count 1")

    def train(self, spec: TrainSpec, log: LogSink) -> dict[str, int]:
        self.check_hosts([host.host for host in spec.hosts])
        self.prepare("train")
        runs: dict[str, ProcessRun] = {}
        scratch = [tmp_dir(host.root.with_name(f"{host.host}-tmp")) for host in spec.hosts]
        try:
            for host, tmp in zip(spec.hosts, scratch, strict=True):
                _stage_channels(host)
                env = program_env({**self.image_env, **spec.env,
                                   contract.BASE_DIR_ENV: str(host.root)}, tmp)
                runs[host.host] = self._start("train", env, host.host, log,
                                              spec.log_dir / f"{host.host}.log")
            return supervise(runs, spec.grace_seconds, say=spec.notify,
                             on_failure=spec.on_host_failure, stop=spec.stop)
        finally:
            _end(runs)
            for tmp in scratch:
                _remove(tmp)

    def start_server(self, spec: ServeSpec, log: LogSink) -> ProcessServer:
        self.prepare("serve")
        model_dir = spec.root / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        archive.copy_tree(spec.model_dir, model_dir)  # a sparse file's holes stay holes
        tmp = tmp_dir(spec.root.parent / "tmp")
        env = program_env({**self.image_env, **spec.env, contract.BASE_DIR_ENV: str(spec.root),
                           contract.BIND_TO_PORT_ENV: str(spec.port),
                           "SERVE_BIND_ADDRESS": "127.0.0.1"}, tmp)
        run = self._start("serve", env, "serve", log, None)
        return ProcessServer(run.process, run.pump, url=f"http://127.0.0.1:{spec.port}",
                             scratch=[tmp])

    def _start(self, program: str, env: Mapping[str, str], host: str, log: LogSink,
               log_file: Path | None) -> ProcessRun:
        return self._spawn(self._command([str(self.program_dir / program)]), env, host, log,
                           log_file)

    def _command(self, command: Sequence[str]) -> list[str]:
        """*command* as this machine runs it: a program of ``container/<program>`` (by name or
        path) and ``python``/``python3`` with the project's environment's Python, any other
        name from PATH (the program's directory and the environment's bin first).

        :raises ConfigError: when the program is nowhere.
        """
        first, rest = command[0], list(command[1:])
        target = Path(first) if "/" in first else self.program_dir / first
        if target.is_file():
            found = program_command(target)
            if found[0] == sys.executable:  # a Python program: the project's own environment
                return [self.python(), str(target), *rest]
            return [*found, *rest]
        if re.fullmatch(r"python(3(\.\d+)?)?", first) and not is_r_program(self.program_dir):
            return [self.python(), *rest]
        if "/" not in first:
            path = os.pathsep.join([str(self.program_dir), *self._bin_dirs(), os.defpath,
                                    os.environ.get("PATH", "")])
            located = shutil.which(first, path=path)
            if located is not None:
                return [located, *rest]
        raise ConfigError(f"cannot run {first!r} on the process backend: it is not a program in"
                          f" {self.program_dir} nor on PATH; name one of"
                          f" {self.program_dir.name}'s programs, or use --backend docker")

    def _bin_dirs(self) -> list[str]:
        return [] if is_r_program(self.program_dir) else [str(self.environment().bin_dir)]

    def _spawn(self, command: list[str], env: Mapping[str, str], host: str, log: LogSink,
               log_file: Path | None) -> ProcessRun:
        extra: dict[str, str] = {}
        places = [str(self.program_dir)]
        if not is_r_program(self.program_dir):
            environment = self.environment()
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

    def process(self, spec: ProcessingSpec, log: LogSink) -> dict[str, int]:
        """A processing job's one host: ContainerEntrypoint + ContainerArguments run as a
        process, with ``SAGEMAKER_BASE_DIR`` standing for /opt/ml. Each input is copied to its
        LocalPath in the host's tree and made read-only; every item of the command that begins
        with /opt/ml/ is rewritten to the same place in the tree.

        :raises ConfigError: for more than one host, or no command to run.
        """
        check_processing(len(spec.hosts), spec.entrypoint, spec.arguments, self.program_dir)
        host = spec.hosts[0]
        command = self._command([self.host_path(item, host.root)
                                 for item in [*(spec.entrypoint or ()), *(spec.arguments or ())]])
        tmp = tmp_dir(host.root.with_name(f"{host.host}-tmp"))
        tree = contract.ProcessingTree(host.root)
        runs: dict[str, ProcessRun] = {}
        try:
            for path, source in host.inputs.items():
                _copy_read_only(source, tree.local_path(path))
            env = program_env({**self.image_env, **spec.env,
                               contract.BASE_DIR_ENV: str(host.root)}, tmp)
            runs[host.host] = run = self._spawn(command, env, host.host, log,
                                                spec.log_dir / f"{host.host}.log")
            if spec.on_start is not None:
                spec.on_start(host.host, run.process.pid)
            return supervise(runs, spec.grace_seconds, say=spec.notify,
                             on_failure=spec.on_host_failure, stop=spec.stop)
        finally:
            _end(runs)
            _remove(tmp)

    @staticmethod
    def host_path(item: str, root: Path) -> str:
        """*item*, or where it lies under *root* when it is a path under /opt/ml."""
        relative = contract.under_container_root(item)
        return item if relative is None else str(root / relative)


def check_processing(hosts: int, entrypoint: Sequence[str] | None,
                     arguments: Sequence[str] | None, program_dir: Path | None = None) -> None:
    """Refuse what the process backend cannot run of a processing job: more than one host (a
    process has no host name of its own for its peers to reach), or no command (the image's
    ENTRYPOINT and CMD are Docker's).

    :raises ConfigError: with the reason and the fix.
    """
    if hosts > 1:
        raise ConfigError(f"--instance-count {hosts}: the process backend runs a processing job"
                          " on one host only (processes get no host names for their peers to"
                          " reach); use --backend docker")
    if not entrypoint and not arguments:
        where = f" (e.g. a program of {program_dir}, or python3 with --code)" if program_dir else ""
        raise ConfigError("the process backend has no image ENTRYPOINT or CMD to run: pass"
                          f" --entrypoint{where}, or use --backend docker")


def tmp_dir(tmp: Path) -> Path:
    """*tmp* made new and empty: a program's TMPDIR (its HOME in ``home`` under it), as a
    container has a /tmp of its own. Kept short (beside the /opt/ml tree), as the unix
    sockets a server makes in it must fit in 107 bytes."""
    _remove(tmp)
    (tmp / "home").mkdir(parents=True)
    # as /tmp: anyone may make files there (nginx workers running as another user reach the
    # sockets a server makes in it), only their owner may remove them
    tmp.chmod(0o1777)
    (tmp / "home").chmod(0o700)
    parent = tmp.parent
    parent.chmod(stat.S_IMODE(parent.stat().st_mode) | 0o111)  # passable to reach it
    return tmp


def program_env(job_env: Mapping[str, str], tmp: Path,
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a program runs with: *job_env* (the contract's variables and the job's
    own) over the minimum needed to run (PATH, the locale, :data:`PASSED_ON`) and a HOME and
    TMPDIR in *tmp*. Nothing else of *environ* (byoc's) reaches it: no credentials, no tokens.
    Python writes its byte code under byoc's cache (``pycache``), never beside the project's
    sources (its ``container/``), and reuses it from one job to the next.
    """
    host = os.environ if environ is None else environ
    env = {key: value for key, value in host.items()
           if key in PASSED_ON or key.startswith("LC_")}
    env.setdefault("LANG", "C.UTF-8")
    env["PATH"] = host.get("PATH", os.defpath)
    env.update(HOME=str(tmp / "home"), TMPDIR=str(tmp), PYTHONUNBUFFERED="1",
               PYTHONPYCACHEPREFIX=str(envs.cache_dir(host) / "pycache"))
    env.update(job_env)
    return env


def peer_markers(program_dir: Path) -> tuple[str, str] | None:
    """The first file of *program_dir* (relative to its project) whose source talks to peers
    by host name, and what it says (``torch.distributed``), or None."""
    for path in sorted(program_dir.rglob("*")):
        if not path.is_file() or path.suffix not in ("", ".py", ".R", ".r", ".sh"):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        match = PEER_MARKERS.search(text)
        if match:
            return str(path.relative_to(program_dir.parent.parent)), match.group(1)
    return None


def hosts_file_names(path: Path = HOSTS_FILE) -> set[str]:
    """The host names *path* (/etc/hosts) maps to addresses."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return set()
    return {name for line in lines for name in line.split("#", 1)[0].split()[1:]}



def _end(runs: Mapping[str, ProcessRun]) -> None:
    """Kill what is still running of *runs*, and what each program left in its process group
    (as a container's processes end with it), and collect their logs."""
    for run in runs.values():
        if run.poll() is None:
            run.kill()
        run.process.wait()
        run._signal(signal.SIGKILL)
        run.pump.join()


def _remove(path: Path) -> None:
    """Remove *path*, also where the program made read-only directories in it."""
    if path.is_symlink() or not path.exists():
        path.unlink(missing_ok=True)
        return
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    for top, dirs, _files in os.walk(path):
        for name in dirs:
            with contextlib.suppress(OSError):
                inner = Path(top) / name
                if not inner.is_symlink():
                    inner.chmod(stat.S_IMODE(inner.stat().st_mode) | stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


def _stage_channels(host: HostSpec) -> None:
    """Copy each channel into the host's tree and make the copy read-only."""
    for name, source in host.channels.items():
        _copy_read_only(source, host.root / "input" / "data" / name)


def _copy_read_only(source: Path, target: Path) -> None:
    """Copy the folder *source* to *target* and make the copy read-only."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    archive.copy_tree(source, target)
    for path in sorted(target.rglob("*"), reverse=True):
        if not path.is_symlink():
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
