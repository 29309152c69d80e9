"""``byoc upgrade``: bring a project made by an older byoc onto the installed template.

``byoc new`` leaves two committed files at the project root: :data:`RECORD_FILE`, what the
project was rendered from (byoc's version, a hash of the template tree, the answers), and
:data:`BASE_FILE`, a compact tarball of that pristine render. An upgrade renders the installed
template with the recorded answers ("theirs"), takes the recorded render as the base and the
project's files as "ours", and merges them file by file with ``git merge-file``.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ByocError, ConfigError

#: What the project was rendered from: a small JSON file the project commits.
RECORD_FILE = ".byoc-template.json"
#: The pristine render of the recorded template (the base of the next upgrade), gzipped tar.
BASE_FILE = ".byoc-template.tar.gz"
#: Never part of a render's file list: the record itself and what no template holds.
_SKIP_PARTS = {".git", "__pycache__", ".byoc", ".venv", ".pytest_cache"}

#: The kinds of change, in the order the summary lists them.
KINDS = ("updated", "merged", "conflict", "added", "removed", "kept")


@dataclass(frozen=True)
class Change:
    """What the upgrade does to one file of the project."""

    path: str
    kind: str  # one of KINDS
    note: str = ""
    #: the file's new content (None: the file is deleted, or left as it is for "kept")
    content: bytes | None = None
    mode: int | None = None


@dataclass
class UpgradeResult:
    """Every change an upgrade made (or, on a dry run, would make)."""

    project: Path
    changes: list[Change] = field(default_factory=list)
    diff: str = ""
    from_version: str = ""
    to_version: str = ""

    @property
    def conflicts(self) -> list[str]:
        return [change.path for change in self.changes if change.kind == "conflict"]

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for c in self.changes if c.kind == kind) for kind in KINDS}


def byoc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("byoc")
    except PackageNotFoundError:  # a checkout run without installing
        return "0.0.0"


def template_hash(template: Path) -> str:
    """A sha256 of the template tree (paths and contents), byte code left out."""
    digest = hashlib.sha256()
    for path in sorted(template.rglob("*")):
        if not path.is_file() or _SKIP_PARTS.intersection(path.relative_to(template).parts) \
                or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(template).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def full_context(template: Path, answers: Mapping[str, str]) -> dict[str, str]:
    """Every public template variable as cookiecutter resolves it for *answers* (the defaults
    filled in), so a later byoc renders the same project even if its defaults changed."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(context_file=str(template / "cookiecutter.json"),
                               extra_context=dict(answers))
    resolved = prompt_for_config(context, no_input=True)
    return {key: str(value) for key, value in resolved.items() if not key.startswith("_")}


def render(template: Path, context: Mapping[str, str], destination: Path) -> Path:
    """Render *template* with *context* (a full context) under *destination*; the project dir.

    :raises ByocError: when cookiecutter cannot render it.
    """
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    scratch = tempfile.mkdtemp(prefix="byoc-render-")
    saved = tempfile.tempdir
    tempfile.tempdir = scratch  # cookiecutter leaves its hook files in the temporary folder
    try:
        return Path(cookiecutter(str(template), no_input=True, output_dir=str(destination),
                                 extra_context=dict(context)))
    except (CookiecutterException, ValueError) as exc:  # ValueError: a value not among the choices
        raise ByocError(f"cannot render the template {template}: {exc}") from exc
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(scratch, ignore_errors=True)


def record(project: Path, template: Path, context: Mapping[str, str]) -> None:
    """Write :data:`RECORD_FILE` and :data:`BASE_FILE` into *project*, a pristine render of
    *template* (call it before anything else is added to the project)."""
    base = pack(_files(project))
    (project / BASE_FILE).write_bytes(base)
    _write_record(project, template, context)


def _write_record(project: Path, template: Path, context: Mapping[str, str]) -> None:
    (project / RECORD_FILE).write_bytes(_record_bytes(template, context))


def _record_bytes(template: Path, context: Mapping[str, str], version: str | None = None) -> bytes:
    data = {"byoc_version": version or byoc_version(), "template_sha256": template_hash(template),
            "context": dict(context)}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def read_record(project: Path) -> dict[str, Any] | None:
    """The project's record, or None when it has none.

    :raises ConfigError: when the record is there but unreadable.
    """
    path = project / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("context"), dict):
            raise ValueError("no context")
        missing = [key for key in ("project_slug", "program")
                   if not isinstance(data["context"].get(key), str)]
        if missing:
            raise ValueError(f"its context has no {' or '.join(missing)}")
    except ValueError as exc:
        raise ConfigError(f"{path} is not a byoc template record ({exc}); restore it from git") from None
    return data


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under *root* (path -> content, mode), the record files and caches left out."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if _SKIP_PARTS.intersection(relative.parts) or path.suffix == ".pyc" \
                or relative.as_posix() in (RECORD_FILE, BASE_FILE):
            continue
        if path.is_file() and not path.is_symlink():
            found[relative.as_posix()] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return found


def _project_files(root: Path, paths: set[str]) -> dict[str, tuple[bytes, int]]:
    """The project's files at *paths* (only the template's: never the user's data)."""
    found = {}
    for name in sorted(paths):
        path = root / name
        if path.is_file() and not path.is_symlink():
            found[name] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return found


def pack(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A reproducible gzipped tarball of *files* (sorted, no times or owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content, mode = files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def unpack(data: bytes) -> dict[str, tuple[bytes, int]]:
    """The files of a tarball made by :func:`pack`.

    :raises ValueError: when *data* is not such a tarball (damaged, truncated, or naming a
        path outside the project).
    """
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r") as tar:
            for member in tar.getmembers():
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise ValueError(f"it names {member.name!r}, outside the project")
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    found[name.as_posix()] = (handle.read(), member.mode)
    except (OSError, EOFError, tarfile.TarError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(str(exc) or type(exc).__name__) from None
    return found


def older_template(source: Path, option: str = "--from") -> Path:
    """The template in *source* (named by *option*, ``--from`` or ``--to``): a template
    directory (with ``cookiecutter.json``), or a byoc checkout or unpacked wheel holding one
    in ``cookiecutter/`` or ``byoc/template/``.

    :raises ConfigError: when *source* holds no template.
    """
    for candidate in (source, source / "cookiecutter", source / "byoc" / "template",
                      source / "src" / "byoc" / "template"):
        if (candidate / "cookiecutter.json").is_file():
            try:
                data = json.loads((candidate / "cookiecutter.json").read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ConfigError(f"{option} {source}: {candidate / 'cookiecutter.json'} is not"
                                  f" JSON ({exc})") from None
            if not isinstance(data, dict) or "project_slug" not in data \
                    or not (candidate / "{{cookiecutter.project_slug}}").is_dir():
                raise ConfigError(f"{option} {source}: {candidate} is not a byoc template (no"
                                  " project_slug in cookiecutter.json, or no"
                                  " {{cookiecutter.project_slug}} directory)")
            return candidate
    raise ConfigError(f"{option} {source}: no byoc template there (a directory with"
                      " cookiecutter.json, or a byoc checkout or unpacked wheel holding one)")


def template_version(template: Path) -> str | None:
    """The byoc version *template* (a template directory found by :func:`older_template`)
    belongs to, when it can be read: the ``pyproject.toml`` of the checkout holding it, or the
    ``*.dist-info/METADATA`` of the unpacked wheel holding it; None otherwise."""
    from ..project import ProjectConfig  # a TOML file read as byoc.toml is

    for folder in list(template.resolve().parents)[:3]:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                project = ProjectConfig.read(pyproject).project
            except ConfigError:
                continue
            if project.get("name") == "byoc" \
                    and isinstance(project.get("version"), str):
                return str(project["version"])
        for metadata in sorted(folder.glob("byoc-*.dist-info/METADATA")):
            for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return None


def check_clean(project: Path) -> None:
    """:raises ConfigError: unless *project* is in a git work tree with nothing uncommitted."""
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=project,
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ConfigError(f"cannot run git ({exc.strerror}): byoc upgrade needs git;"
                          " install it, or add --force") from exc
    if done.returncode != 0:
        raise ConfigError(f"{project} is not in a git repository, so an upgrade could not be"
                          " undone: commit the project to git first, or add --force")
    if done.stdout.strip():
        raise ConfigError(f"{project} has uncommitted changes: commit them first so the upgrade"
                          " can be reviewed and undone (git diff, git checkout .), or add --force")


def merge_file(ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, bool]:
    """Three-way merge with ``git merge-file``: the result and whether it has conflicts.

    :raises ByocError: when git cannot merge them (e.g. binary files) or is missing.
    """
    with tempfile.TemporaryDirectory(prefix="byoc-merge-") as scratch:
        paths = []
        for name, content in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(scratch) / name
            path.write_bytes(content)
            paths.append(str(path))
        try:
            done = subprocess.run(["git", "merge-file", "-p", "-L", "yours", "-L", "base",
                                   "-L", "byoc template", *paths], capture_output=True, check=False)
        except OSError as exc:
            raise ByocError(f"cannot run git merge-file ({exc.strerror}): install git") from exc
    if done.returncode < 0 or done.returncode > 127:
        raise ByocError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout, done.returncode > 0


def _is_binary(*contents: bytes) -> bool:
    return any(b"\0" in content[:8000] for content in contents)


def plan(base: Mapping[str, tuple[bytes, int]], theirs: Mapping[str, tuple[bytes, int]],
         ours: Mapping[str, tuple[bytes, int]]) -> list[Change]:
    """What to do with each file the template held before or holds now."""
    changes = []
    for path in sorted(set(base) | set(theirs)):
        old, new, mine = base.get(path), theirs.get(path), ours.get(path)
        if new is not None and old is not None:
            if mine is None:
                if new[0] != old[0]:
                    changes.append(Change(path, "kept", "you deleted it; the template changed it"))
            elif mine[0] == old[0]:
                if new != old:  # a mode you changed (chmod +x) is kept unless the template's changed
                    mode = new[1] if mine[1] == old[1] or new[1] != old[1] else mine[1]
                    changes.append(Change(path, "updated", "", new[0], mode))
            elif new[0] == old[0]:
                changes.append(Change(path, "kept", "your edit"))
            elif mine[0] != new[0]:  # (already the template's: nothing to do)
                changes.append(_merged(path, mine, old[0], new))
        elif new is not None:  # new in the template
            if mine is None:
                changes.append(Change(path, "added", "", new[0], new[1]))
            elif mine[0] != new[0]:
                changes.append(_merged(path, mine, b"", new))
        elif mine is not None:  # gone from the template
            if mine[0] == old[0]:  # type: ignore[index]
                changes.append(Change(path, "removed"))
            else:
                changes.append(Change(path, "kept", "removed from the template, but you edited it"))
    return changes


def _merged(path: str, mine: tuple[bytes, int], base: bytes, new: tuple[bytes, int]) -> Change:
    if _is_binary(mine[0], base, new[0]):
        return Change(path, "conflict", "binary file changed on both sides: yours kept")
    content, conflicted = merge_file(mine[0], base, new[0])
    if conflicted:
        return Change(path, "conflict", "both changed the same lines: conflict markers", content, mine[1])
    return Change(path, "merged", "", content, mine[1])


def guessed_answers(root: Path) -> dict[str, str]:
    """The template answers of a project without a record, as far as its ``byoc.toml`` and
    files tell them: its name, program, region and repository (``framework``: see
    :func:`closest_framework`)."""
    from ..project import Project

    found = Project.load(root)
    answers = {"project_slug": found.name, "program": found.program}
    if found.region:
        answers["aws_region"] = found.region
    if found.repository:
        answers["ecr_repository"] = found.repository
    return answers


def closest_framework(template: Path, answers: Mapping[str, str], root: Path,
                      scratch: Path) -> str | None:
    """The ``framework`` choice of *template* whose render with *answers* has the most files
    identical to the project's at *root* (None when the template offers no choice): what a
    project made before the record was most likely rendered as."""
    data = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    choices = data.get("framework")
    if not isinstance(choices, list) or not choices:
        return None
    best, best_score = None, -1
    for index, choice in enumerate(choices):
        context = full_context(template, {**answers, "framework": str(choice)})
        files = _files(render(template, context, scratch / f"framework-{index}"))
        score = sum(1 for name, content in _project_files(root, set(files)).items()
                    if content[0] == files[name][0])
        if score > best_score:  # the first (the default) wins a tie
            best, best_score = str(choice), score
    return best


def upgrade(project: Path, template: Path, *, dry_run: bool = False, force: bool = False,
            source: Path | None = None, answers: Mapping[str, str] | None = None,
            to: Path | None = None) -> UpgradeResult:
    """Upgrade the project *project* is in to *template* (``byoc.scaffold.template_dir()``).

    :param source: where the base comes from when the project has no record (``--from``):
        an older template or byoc checkout, rendered with the project's answers.
    :param answers: with *source*, template answers the project's files do not tell
        (``--set``, e.g. ``framework=xgboost``).
    :param to: the template to upgrade to instead of *template* (``--to``): an older or newer
        byoc checkout, unpacked wheel or template directory.
    :raises ConfigError: for a project without a record (and no *source*), or with uncommitted
        changes (without *force*).
    """
    from ..project import CONFIG_FILE, Project

    here = project.resolve()
    root = next((d for d in (here, *here.parents) if (d / CONFIG_FILE).is_file()), None)
    if root is None:
        raise ConfigError(f"{project} is not in a byoc project (no {CONFIG_FILE})")
    data = read_record(root)
    if answers and source is None:
        raise ConfigError("--set gives the answers of the template named by --from; without"
                          " --from the recorded answers are used")
    if data is not None:
        program = Project.load(root).program
        if data["context"]["program"] != program:
            raise ConfigError(f"{root / RECORD_FILE} was rendered for the program"
                              f" {data['context']['program']!r} but {CONFIG_FILE} names {program!r}:"
                              f" an upgrade would add a second runtime; restore the record from git,"
                              f" or set [project] program back")
    if data is None and source is None:
        raise ConfigError(f"{root} has no {RECORD_FILE} (it was made by a byoc older than"
                          f" byoc upgrade): name the template it was made from with --from PATH"
                          f" (an older byoc checkout, unpacked wheel or template directory)")
    if to is not None:
        template = older_template(to, "--to")
        to_version = template_version(template) or f"template at {to}"
    else:
        to_version = byoc_version()
    if not force and not dry_run:
        check_clean(root)
    with tempfile.TemporaryDirectory(prefix="byoc-upgrade-") as scratch:
        if source is not None:
            old_template = older_template(source)
            if data:
                known = {str(k): str(v) for k, v in data["context"].items()}
            else:
                known = guessed_answers(root)
                if "framework" not in (answers or {}):
                    framework = closest_framework(old_template, known, root,
                                                  Path(scratch) / "guess")
                    if framework is not None:
                        known["framework"] = framework
            context = full_context(old_template, {**known, **(answers or {})})
            base = _files(render(old_template, context, Path(scratch) / "base"))
            from_version = f"template at {source}"
        else:
            assert data is not None
            context = {str(k): str(v) for k, v in data["context"].items()}
            base_path = root / BASE_FILE
            if not base_path.is_file():
                raise ConfigError(f"{base_path} is missing: restore it from git, or name the"
                                  f" template the project was made from with --from PATH")
            try:
                base = unpack(base_path.read_bytes())
            except ValueError as exc:
                raise ConfigError(f"{base_path} is not a byoc template render ({exc}): restore"
                                  f" it from git, or name the template the project was made"
                                  f" from with --from PATH") from None
            from_version = str(data.get("byoc_version", "?"))
        theirs = _files(render(template, context, Path(scratch) / "theirs"))
    ours = _project_files(root, set(base) | set(theirs))
    changes = plan(base, theirs, ours)
    result = UpgradeResult(root, changes, from_version=from_version, to_version=to_version)
    result.diff = _diff(changes, ours)
    if dry_run:
        return result
    writes = [(change.path, change.content, change.mode) if change.kind != "removed"
              else (change.path, None, None)
              for change in changes if change.kind == "removed" or change.content is not None]
    writes += [(BASE_FILE, pack(theirs), None),
               (RECORD_FILE, _record_bytes(template, context, to_version), None)]
    _check_writable(root, writes)
    _apply(root, writes)
    return result


def _check_writable(root: Path, writes: list[tuple[str, bytes | None, int | None]]) -> None:
    """:raises ByocError: naming the first file of *writes* (path, content or None to delete,
    mode) that cannot be written or deleted, before anything is written."""
    for name, content, _ in writes:
        target = root / name
        problem = ""
        if content is None:  # a deletion needs a writable folder
            if not os.access(target.parent, os.W_OK | os.X_OK):
                problem = f"its folder {target.parent} is not writable"
        elif target.is_dir():
            problem = "a directory is in the way"
        elif target.exists() or target.is_symlink():
            if not os.access(target, os.W_OK):
                problem = "it is not writable"
        else:
            folder = target.parent
            while not folder.exists() and folder != root:
                folder = folder.parent
            if not folder.is_dir():
                problem = f"{folder} is a file, not a folder"
            elif not os.access(folder, os.W_OK | os.X_OK):
                problem = f"its folder {folder} is not writable"
        if problem:
            raise ByocError(f"cannot write {target}: {problem}; nothing was written (move it"
                            f" away or fix its permissions, then run byoc upgrade again)")


def _apply(root: Path, writes: list[tuple[str, bytes | None, int | None]]) -> None:
    """Write (or delete) every file of *writes*, all or nothing: when one fails, what was
    already done is undone.

    :raises ByocError: naming the file that failed, and any the undo could not restore.
    """
    undo: list[tuple[Path, bytes | None, int | None]] = []  # what each target held before
    made: list[Path] = []  # folders created
    try:
        for name, content, mode in writes:
            target = root / name
            if target.is_file():
                undo.append((target, target.read_bytes(), stat.S_IMODE(target.stat().st_mode)))
            else:
                undo.append((target, None, None))
            if content is None:
                target.unlink()
                continue
            missing = [d for d in (target.parent, *target.parent.parents)
                       if d.is_relative_to(root) and not d.exists()]
            for folder in reversed(missing):
                folder.mkdir()
                made.append(folder)
            target.write_bytes(content)
            if mode is not None:
                target.chmod(mode)
    except OSError as exc:
        failed = []
        for path, before, before_mode in reversed(undo):
            try:
                if before is None:  # a file this upgrade created (never a folder in the way)
                    if not path.is_dir():
                        path.unlink(missing_ok=True)
                else:
                    path.write_bytes(before)
                    path.chmod(before_mode or 0o644)
            except OSError:
                failed.append(str(path.relative_to(root)))
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
        what = exc.strerror or type(exc).__name__
        where = exc.filename or root / writes[len(undo) - 1][0]
        if failed:
            raise ByocError(f"cannot write {where} ({what}); the upgrade was half applied and"
                            f" these files could not be restored: {', '.join(failed)} (restore"
                            f" them with git checkout)") from None
        raise ByocError(f"cannot write {where} ({what}): the files already written were"
                        f" restored; nothing changed") from None


def _diff(changes: list[Change], ours: Mapping[str, tuple[bytes, int]]) -> str:
    """A unified diff of every change against the project's files."""
    parts = []
    for change in changes:
        if change.kind == "kept" or (change.content is None and change.kind != "removed"):
            continue
        before = ours[change.path][0] if change.path in ours else b""
        after = change.content or b""
        if _is_binary(before, after):
            parts.append(f"Binary file {change.path} {change.kind}\n")
            continue
        lines = difflib.unified_diff(
            before.decode(errors="replace").splitlines(keepends=True),
            after.decode(errors="replace").splitlines(keepends=True),
            fromfile=f"a/{change.path}" if change.path in ours else "/dev/null",
            tofile="/dev/null" if change.kind == "removed" else f"b/{change.path}")
        parts.append("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    return "".join(parts)
