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


#: The R packages an R project loads, what for, and whether the process backend fails without it.
R_PACKAGES = (("jsonlite", "train and serve load it", "fail"),
              ("plumber", "serve loads it: without it only train runs as processes", "warn"),
              ("testthat", "make test runs the project's tests with it", "warn"))


def diagnose(project_root: Path | None = None, environ: Mapping[str, str] | None = None) -> Report:
    """Check the Docker engine, then what the process backend needs for *project_root* (or a new
    project): uv, a Python interpreter matching the image, nginx and the environment cache for a
    Python project; Rscript, its packages and nginx for an R one (which needs no Python
    environment: its programs run with Rscript)."""
    env = dict(os.environ if environ is None else environ)
    if project_root is not None and _is_r_project(project_root):
        return Report((_docker(env), *_r(env), _r_nginx(env)))
    checks = [_docker(env), _uv(), *_python(project_root, env), _nginx(env), _cache(env)]
    return Report(tuple(checks))


def _is_r_project(project_root: Path) -> bool:
    from .backends.process import is_r_program
    from .project import Project

    program_dir = Project.load(project_root).program_dir
    return program_dir.is_dir() and is_r_program(program_dir)


def _r(environ: Mapping[str, str]) -> list[Check]:
    rscript = shutil.which("Rscript", path=environ.get("PATH", os.defpath))
    if rscript is None:
        return [Check("process", "fail", "Rscript is not on PATH: the R programs cannot run as"
                                         " processes", "install R (Debian: apt-get install"
                                         " r-base-core r-cran-jsonlite r-cran-plumber"
                                         " r-cran-testthat)")]
    names = [name for name, _, _ in R_PACKAGES]
    probe = ("wanted <- commandArgs(TRUE); cat(R.version$major, R.version$minor, '\\n'); "
             "cat(wanted[!vapply(wanted, requireNamespace, logical(1), quietly = TRUE)])")
    try:
        done = subprocess.run([rscript, "--vanilla", "-e", probe, *names], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
                              env=dict(environ))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Check("process", "fail", f"{rscript} does not run: {exc}",
                      "reinstall R (Debian: apt-get install --reinstall r-base-core)")]
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [Check("process", "fail", f"{rscript} does not run: {reason}",
                      "reinstall R (Debian: apt-get install --reinstall r-base-core)")]
    version, _, rest = done.stdout.partition("\n")
    missing = set(rest.split())
    checks = [Check("process", "ok", f"R {'.'.join(version.split())} ({rscript}) runs the R"
                                     " programs")]
    for name, why, status in R_PACKAGES:
        if name in missing:
            checks.append(Check("process", "fail" if status == "fail" else "warn",
                                f"R package {name} is missing: {why}",
                                f"Debian: apt-get install r-cran-{name} (or in R:"
                                f" install.packages(\"{name}\"))"))
        else:
            checks.append(Check("process", "ok", f"R package {name} is installed"))
    return checks


def _r_nginx(environ: Mapping[str, str]) -> Check:
    nginx = shutil.which("nginx", path=environ.get("PATH", os.defpath))
    if nginx is None:
        return Check("process", "warn", "nginx is not on PATH: the R program's serve runs nginx in"
                                        " front of its plumber processes, so only train runs as"
                                        " processes", "install nginx (Debian: apt-get install"
                                                      " nginx-light)")
    return Check("process", "ok", f"nginx ({nginx}) fronts the plumber processes as in the image")


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
