"""``byoc doctor``: which backends can run on this machine, and what to fix when one cannot."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .backends import envs
from .errors import ByocError

Status = Literal["ok", "warn", "fail"]
BACKENDS = ("docker", "process")


@dataclass(frozen=True)
class Check:
    """One thing a backend needs: ``fail`` stops the backend, ``warn`` does not."""

    backend: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    def can_run(self, backend: str) -> bool:
        return all(c.status != "fail" for c in self.checks if c.backend == backend)

    @property
    def usable(self) -> list[str]:
        return [backend for backend in BACKENDS if self.can_run(backend)]


def diagnose(project_root: Path | None = None, environ: Mapping[str, str] | None = None) -> Report:
    """Check the Docker engine, then what the process backend needs (uv, a Python interpreter
    matching the image, nginx, the environment cache) for *project_root* (or a new project)."""
    env = dict(os.environ if environ is None else environ)
    checks = [_docker(env), _uv(), *_python(project_root, env), _nginx(env), _cache(env)]
    return Report(tuple(checks))


def _docker(environ: Mapping[str, str]) -> Check:
    from ._docker import docker_client
    from .errors import DockerUnavailableError

    try:
        client = docker_client(environ, timeout=5)
    except DockerUnavailableError as exc:
        reason = exc.detail.splitlines()[0] if exc.detail else exc.message
        return Check("docker", "fail", f"no Docker engine answers ({reason})",
                     "start the engine (e.g. `sudo systemctl start docker`, or `dockerd`), or set"
                     " DOCKER_HOST to one that runs")
    try:
        version = client.version().get("Version", "?")
    finally:
        client.close()
    return Check("docker", "ok", f"Docker engine {version} answers")


def _uv() -> Check:
    try:
        uv = envs.find_uv()
    except ByocError as exc:
        return Check("process", "fail", "uv is not installed", exc.message.split(": ", 1)[-1])
    done = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return Check("process", "fail", f"{uv} does not run: {done.stderr.strip()}",
                     "reinstall uv: pip install --force-reinstall uv")
    return Check("process", "ok", f"{done.stdout.strip()} ({uv}) builds the project's environment")


def _python(project_root: Path | None, environ: Mapping[str, str]) -> list[Check]:
    if project_root is None:
        from .scaffold import template_dir

        project_root, whose = template_dir() / "{{cookiecutter.project_slug}}", "a new project's"
    else:
        whose = "the project's"
    wanted = envs.image_python(project_root)
    try:
        choice = envs.choose_interpreter(wanted, environ)
    except ByocError as exc:
        message, _, fix = exc.message.partition("; ")
        return [Check("process", "fail", message, fix)]
    found = choice.interpreter
    if choice.note:
        fix = (f"install python{wanted} (Debian: apt-get install python{wanted}-venv), or set"
               f" {envs.PYTHON_ENV}" if wanted else "")
        return [Check("process", "warn", f"Python {found.version} ({found.path}): {choice.note}",
                      fix)]
    return [Check("process", "ok", f"Python {found.version} ({found.path}), as {whose} image"
                                   f" (python:{wanted})")]


def _nginx(environ: Mapping[str, str]) -> Check:
    nginx = shutil.which("nginx", path=environ.get("PATH", os.defpath))
    if nginx is None:
        return Check("process", "warn", "nginx is not on PATH: serve runs gunicorn alone, without"
                                        " nginx in front of it as in the image",
                     "install nginx (Debian: apt-get install nginx-light)")
    return Check("process", "ok", f"nginx ({nginx}) fronts gunicorn as in the image")


def _cache(environ: Mapping[str, str]) -> Check:
    cache = envs.cache_dir(environ)
    existing = next((p for p in (cache, *cache.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        return Check("process", "fail", f"cannot write the environment cache {cache}",
                     f"set {envs.CACHE_ENV} to a writable directory")
    return Check("process", "ok", f"environments are cached in {cache}")


def render(report: Report) -> str:
    """The report as aligned lines, each failure or warning with its fix under it."""
    lines = []
    for check in report.checks:
        lines.append(f"{check.backend:<8} {check.status:<5} {check.detail}")
        if check.fix and check.status != "ok":
            lines.append(f"{'':<14} fix: {check.fix}")
    usable = report.usable
    lines.append("")
    lines.append("backends that can run here: " + (", ".join(usable) if usable else "none"))
    return "\n".join(lines)
