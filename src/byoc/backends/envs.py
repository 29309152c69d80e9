"""The process backend's Python environments: the project's own, not byoc's.

The image installs ``container/requirements.txt`` with ``pip install --find-links
/opt/wheels`` (the project's ``wheels/``); the process backend runs ``train`` and ``serve`` in
a virtual environment made from that same file and the same ``wheels/`` with ``uv``, on an
interpreter already on this machine (the image's Python major.minor when there is one).
Environments are cached under ``$BYOC_CACHE_DIR/envs`` (default ``$XDG_CACHE_HOME/byoc``, else
``~/.cache/byoc``), one per requirements text, wheels and interpreter. A new one is built in a
temporary directory and renamed into place, so a failed build leaves the others intact;
one that is incomplete or damaged is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, EnvironmentBuildError
from ..say import Say

CACHE_ENV = "BYOC_CACHE_DIR"
PYTHON_ENV = "BYOC_PYTHON"
REQUIREMENTS = Path("container") / "requirements.txt"
#: The image's ``pip install --find-links /opt/wheels``: wheels taken before any index.
WHEELS = Path("wheels")
MARKER = "byoc-env.json"
#: Bump when the layout of an environment changes: old ones are then rebuilt.
FORMAT = 2
#: Prints the interpreter (the base one, for a virtual environment's) and its version; with
#: _PACKAGES, the distributions installed where it runs too.
_PROBE = ("import sys; print(getattr(sys, '_base_executable', '') or sys.executable);"
          " print('%d.%d.%d' % sys.version_info[:3])")
_PACKAGES = ("; import importlib.metadata as m;"
             " print(','.join(sorted({(d.metadata['Name'] or '').lower() for d in m.distributions()})))")
_IMAGE_PYTHON = re.compile(r"\bpython:(\d+\.\d+)")
_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)[\s=]+(\S+)")


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter on this machine."""

    path: str
    version: str
    #: The distributions installed where it runs (lower-case names).
    packages: frozenset[str] = frozenset()

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class InterpreterChoice:
    interpreter: Interpreter
    #: Why this one when it is not the image's Python (empty when it is).
    note: str = ""


@dataclass(frozen=True)
class PythonEnv:
    """A ready environment: run programs with :attr:`python`."""

    root: Path
    interpreter: Interpreter
    built: bool
    seconds: float

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where byoc keeps what it can rebuild: ``$BYOC_CACHE_DIR``, ``$XDG_CACHE_HOME/byoc``
    or ``~/.cache/byoc``."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "byoc"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".cache" / "byoc"


def find_uv() -> str:
    """The ``uv`` binary the uv package installed beside byoc (else one on PATH).

    :raises EnvironmentBuildError: when there is none.
    """
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise EnvironmentBuildError("uv is not installed, and the process backend builds the project's"
                                " environment with it: pip install uv (or reinstall byoc)")


def image_python(project_root: Path) -> str | None:
    """The Python major.minor of the project's image (``python:3.11-slim`` -> ``3.11``), if its
    Dockerfile names a ``python:X.Y`` base image."""
    try:
        text = (project_root / "Dockerfile").read_text(encoding="utf-8")
    except OSError:
        return None
    match = _IMAGE_PYTHON.search(text)
    return match.group(1) if match else None


def probe(command: str, *, packages: bool = False) -> Interpreter | None:
    """The interpreter *command* runs (with its installed distributions when *packages*),
    or None when it does not run."""
    script = _PROBE + (_PACKAGES if packages else "")
    try:
        done = subprocess.run([command, "-I", "-c", script], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 2 or not lines[0]:
        return None
    installed = frozenset(lines[2].split(",")) - {""} if len(lines) > 2 else frozenset()
    return Interpreter(path=lines[0], version=lines[1], packages=installed)


def choose_interpreter(wanted: str | None, environ: Mapping[str, str] | None = None
                       ) -> InterpreterChoice:
    """An interpreter on this machine for an image running Python *wanted* (``3.11``).

    ``$BYOC_PYTHON`` names one explicitly; else ``python<wanted>`` on PATH or in /usr/bin or
    /usr/local/bin; else ``python3`` on PATH or byoc's own, with a note saying so.
    Nothing is downloaded.

    :raises ConfigError: when ``$BYOC_PYTHON`` does not run.
    :raises EnvironmentBuildError: when no interpreter runs at all.
    """
    env = os.environ if environ is None else environ
    path = env.get("PATH", os.defpath)
    forced = env.get(PYTHON_ENV)
    if forced:
        found = probe(shutil.which(forced, path=path) or forced)
        if found is None:
            raise ConfigError(f"{PYTHON_ENV}={forced} is not a Python interpreter that runs here;"
                              " point it at one (e.g. /usr/bin/python3.11) or unset it")
        note = ""
        if wanted and found.minor != wanted:
            note = (f"the image runs Python {wanted}; {PYTHON_ENV} picks {found.path}"
                    f" (Python {found.version})")
        return InterpreterChoice(found, note)
    if wanted:
        for candidate in _candidates(f"python{wanted}", path):
            found = probe(candidate)
            if found is not None and found.minor == wanted:
                return InterpreterChoice(found)
    for candidate in (*_candidates("python3", path), sys.executable):
        found = probe(candidate)
        if found is not None:
            if wanted:
                note = (f"the image runs Python {wanted}, and no python{wanted} is on this machine;"
                        f" using {found.path} (Python {found.version}) instead: install"
                        f" python{wanted} or set {PYTHON_ENV} to match the image")
            else:
                note = (f"the Dockerfile names no python:X.Y base image; using {found.path}"
                        f" (Python {found.version})")
            return InterpreterChoice(found, note)
    raise EnvironmentBuildError("no Python interpreter runs on this machine: install python3"
                                f" (or set {PYTHON_ENV})")


def _candidates(name: str, path: str) -> list[str]:
    found = [shutil.which(name, path=path)]
    found += [str(Path(d) / name) for d in ("/usr/local/bin", "/usr/bin")]
    return list(dict.fromkeys(c for c in found if c and os.access(c, os.X_OK)))


def requirements_key(requirements: Path | None, interpreter: Interpreter,
                     wheels: Path | None = None) -> str:
    """A hash of the requirements (with the files they include), the wheels in *wheels* (each
    one's name, size and modification time) and the interpreter."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT, "python": interpreter.path,
                              "version": interpreter.version}).encode())
    if requirements is not None:
        for path in _requirement_files(requirements):
            digest.update(b"\0" + str(path.name).encode() + b"\0")
            digest.update(path.read_bytes())
    for path in wheel_files(wheels):
        found = path.stat()
        digest.update(json.dumps(["wheel", path.name, found.st_size,
                                  found.st_mtime_ns]).encode())
    return digest.hexdigest()[:16]


def wheel_files(wheels: Path | None) -> list[Path]:
    """The distributions in *wheels* (``*.whl`` and sdists, as pip's ``--find-links`` reads a
    directory: not its subdirectories, not its README), sorted."""
    if wheels is None or not wheels.is_dir():
        return []
    return sorted(path for path in wheels.iterdir() if path.is_file()
                  and path.name.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")))


def _requirement_files(path: Path, seen: set[Path] | None = None) -> list[Path]:
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    files = [path]
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _INCLUDE.match(line)
        if match:
            files += _requirement_files(path.parent / match.group(1), seen)
    return files


def prepare(project_root: Path, *, say: Say, environ: Mapping[str, str] | None = None,
            progress: bool = True) -> PythonEnv:
    """The project's environment, built now when it is missing, stale or damaged.

    :raises EnvironmentBuildError: when it cannot be built (one line naming the requirement
        and the fix); the environments already built stay as they were.
    """
    env = dict(os.environ if environ is None else environ)
    wanted = project_root / REQUIREMENTS
    requirements = wanted if wanted.is_file() else None
    wheels = project_root / WHEELS if (project_root / WHEELS).is_dir() else None
    choice = choose_interpreter(image_python(project_root), env)
    if choice.note:
        say(f"environment: {choice.note}")
    key = requirements_key(requirements, choice.interpreter, wheels)
    envs = cache_dir(env) / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    target = envs / key
    with _locked(envs / f".{key}.lock"):
        if _intact(target, key):
            say(f"environment: reusing {target} (Python {choice.interpreter.version})")
            return PythonEnv(target, choice.interpreter, built=False, seconds=0.0)
        if target.exists():
            say(f"environment: {target} is incomplete or damaged; building it again")
        return _build(target, key, requirements, wheels, project_root, choice.interpreter, env,
                      say, progress)


def _intact(target: Path, key: str) -> bool:
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("key") != key:
        return False
    # the interpreter it links to, and a distribution for each package it was built with
    if not (target / "bin" / "python").exists() or not (target / "pyvenv.cfg").is_file():
        return False
    installed = {_normalise(path.name.split("-", 1)[0])
                 for path in target.glob("lib/python*/site-packages/*.dist-info")}
    return {_normalise(name) for name in marker.get("packages", [])} <= installed


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _build(target: Path, key: str, requirements: Path | None, wheels: Path | None,
           project_root: Path, interpreter: Interpreter, environ: dict[str, str], say: Say,
           progress: bool) -> PythonEnv:
    uv = find_uv()
    source = requirements.relative_to(project_root) if requirements else None
    what = f"from {source}" if source else f"with no packages (no {REQUIREMENTS} in the project)"
    say(f"environment: building {what} on Python {interpreter.version} ({interpreter.path})")
    env = {k: v for k, v in environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update({"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"})
    if "UV_NATIVE_TLS" not in env:  # trust the system's certificates, as Debian's pip does
        env.setdefault("UV_SYSTEM_CERTS", "1")
    log_file = target.parent / f".{key}.log"
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    staging.chmod(0o755)
    started = time.monotonic()
    try:
        lines: list[str] = []
        commands = [[uv, "venv", "--quiet", "--relocatable", "--python", interpreter.path,
                     str(staging)]]
        if requirements is not None:
            # as the image's pip: wheels/ first, and the best version over every index the
            # requirements name (pip's way; uv's own stops at the first index that has it)
            links = ["--find-links", str(wheels)] if wheels is not None else []
            commands.append([uv, "pip", "install", "--python", str(staging / "bin" / "python"),
                             "--index-strategy", "unsafe-best-match", *links,
                             "-r", str(requirements)])
        with _status(f"environment: building {what}", progress) as update:
            ok = all(_run_uv(command, env, project_root, lines, update) for command in commands)
        log_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if not ok:
            raise _build_error(lines, requirements, source, log_file)
        found = probe(str(staging / "bin" / "python"), packages=True)
        if found is None:
            raise EnvironmentBuildError(f"the environment built from {source} does not run;"
                                        f" see {log_file}")
        packages = sorted(found.packages)
        seconds = time.monotonic() - started
        (staging / MARKER).write_text(json.dumps({
            "key": key, "requirements": str(requirements) if requirements else None,
            "wheels": [path.name for path in wheel_files(wheels)],
            "python": interpreter.path, "version": interpreter.version,
            "packages": packages, "seconds": round(seconds, 2),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2),
            encoding="utf-8")
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"environment: built {target} in {seconds:.1f} s ({len(packages)} packages)")
    return PythonEnv(target, interpreter, built=True, seconds=seconds)


def _replace(staging: Path, target: Path) -> None:
    """Rename *staging* to *target*, moving a damaged *target* out of the way first."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        target.rename(old)
    try:
        staging.rename(target)
    finally:
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def _run_uv(command: list[str], env: Mapping[str, str], cwd: Path, lines: list[str],
            update: Callable[[str], None]) -> bool:
    """Run one uv command, its output added to *lines*; True when it succeeded."""
    process = subprocess.Popen(command, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        lines.append(line)
        if line.strip():
            update(line.strip())
    return process.wait() == 0


@contextmanager
def _status(text: str, progress: bool) -> Iterator[Callable[[str], None]]:
    """A live spinner on stderr (shown on a terminal only) that uv's last line updates."""
    from rich.console import Console

    console = Console(stderr=True)
    if not progress or not console.is_terminal:
        yield lambda line: None
        return
    with console.status(text) as status:
        width = max(20, console.width - len(text) - 6)
        yield lambda line: status.update(f"{text}: {line[:width]}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_error(lines: list[str], requirements: Path | None, source: Path | None,
                 log_file: Path) -> EnvironmentBuildError:
    output = "\n".join(lines)
    causes = [re.sub(r"^\s*(?:error|cause|hint):\s*", "", line).strip() for line in lines
              if re.match(r"^\s*(?:error|cause):", line)]
    reason = causes[-1] if causes else (lines[-1].strip() if lines else "uv failed")
    because = re.match(r"Because (.+?)(?: and you require .*| we can conclude .*)?$", reason)
    if because:
        reason = because.group(1).rstrip(",")
    network = bool(re.search(r"Failed to fetch|network (?:was|is) disabled|error sending request|"
                             r"Connect|dns error|timed out|certificate", output, re.IGNORECASE))
    requirement = _named_requirement(requirements, output) if requirements else None
    where = f"{source}" if source else "the environment"
    if network:
        fix = ("check the network and the package index (UV_INDEX_URL / uv's config), then run"
               " again")
    elif requirement and " and " in requirement:
        fix = f"keep one of those lines in {source}, then run again"
    elif requirement and re.search(r"no version of|not found in the package", reason):
        fix = (f"fix or remove that line in {source}, or check that the package index"
               " (UV_INDEX_URL / uv's config) has it, then run again")
    elif requirement:
        fix = f"fix or remove that line in {source}, then run again"
    else:
        fix = f"fix {where}, then run again"
    named = f": {requirement}" if requirement else ""
    return EnvironmentBuildError(f"cannot build the environment from {where}{named}: {reason};"
                                 f" {fix} (uv's log: {log_file})")


def _named_requirement(requirements: Path, output: str) -> str | None:
    """The lines of *requirements* the uv output names: those it quotes whole (two pins of one
    package that conflict are both named), else the first whose package it names."""
    named: list[str] = []
    for path in _requirement_files(requirements):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.split("#", 1)[0].strip()
            match = _REQUIREMENT_NAME.match(text)
            if not text or text.startswith("-") or not match:
                continue
            if re.search(rf"(?<![\w.-]){re.escape(match.group(0))}(?![\w-])", output,
                         re.IGNORECASE):
                named.append(text)
    compact = re.sub(r"\s+", "", output).lower()
    quoted = [text for text in named if re.sub(r"\s+", "", text).lower() in compact]
    if quoted:
        return " and ".join(dict.fromkeys(quoted))
    return named[0] if named else None
