"""``byoc new``: render the project template into a new directory, all or nothing."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ByocError, ConfigError, ProjectExistsError

#: Lower-case letters, digits and single hyphens, starting with a letter, at most
#: 63 characters: valid as a SageMaker job or model name and as an ECR repository.
NAME_PATTERN = re.compile(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,62}")


def template_dir() -> Path:
    """The cookiecutter template: ``byoc/template`` in an installed wheel, else the
    checkout's ``cookiecutter/`` (an editable install runs from ``src/byoc``).

    :raises ByocError: when neither exists (a broken install).
    """
    here = Path(__file__).resolve().parent.parent  # src/byoc (byoc/ in a wheel)
    for candidate in (here / "template", here.parent.parent / "cookiecutter"):
        if (candidate / "cookiecutter.json").is_file():
            return candidate
    raise ByocError(f"byoc's project template is missing from {here / 'template'}:"
                    " reinstall byoc (pip install --force-reinstall byoc)")


def template_variables(template: Path | None = None) -> dict[str, object]:
    """The variables of ``cookiecutter.json`` a user may set (``_private`` ones left out)."""
    path = (template or template_dir()) / "cookiecutter.json"
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if not key.startswith("_")}


#: Where each template's one-line summary (and default description) is kept.
TEMPLATES_FILE = Path("templates") / "templates.json"
DEFAULT_TEMPLATE = "sklearn"


@dataclass(frozen=True)
class TemplateInfo:
    """One choice of ``framework``: what ``byoc new --template NAME`` renders."""

    name: str
    summary: str
    description: str


def list_templates(template: Path | None = None) -> list[TemplateInfo]:
    """The templates ``cookiecutter.json``'s ``framework`` offers, in its order, default first."""
    root = template or template_dir()
    choices = template_variables(root).get("framework")
    names = [str(name) for name in choices] if isinstance(choices, list) else [DEFAULT_TEMPLATE]
    path = root / TEMPLATES_FILE
    known: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    found = []
    for name in names:
        entry = known.get(name) or {}
        found.append(TemplateInfo(name=name, summary=str(entry.get("summary", "")),
                                  description=str(entry.get("description", ""))))
    return found


def check_name(name: str) -> str:
    """Return *name* if SageMaker and ECR accept it; :raises ConfigError: otherwise."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"invalid project name {name!r}: use 1-63 lower-case letters, digits and single"
            " hyphens, starting with a letter and not ending with a hyphen (e.g. churn-model)"
        )
    return name


def new_project(name: str, *, output_dir: Path | None = None, no_input: bool = True,
                extra_context: Mapping[str, str] | None = None,
                template: Path | None = None, framework: str | None = None,
                nested: bool = False) -> Path:
    """Render a new project called *name* under *output_dir* and return its directory.

    The project is rendered into a hidden temporary directory beside the target
    and renamed into place only when complete, so a failure leaves nothing behind.

    :param no_input: take the template's defaults instead of prompting.
    :param extra_context: template variables to set (``--set KEY=VALUE``).
    :param framework: the template to render (``--template``), as if ``framework`` were set;
        its description becomes the default ``description``.
    :param nested: allow *output_dir* to be inside another project (``--nested``).
    :raises ConfigError: for a bad name or an unknown or invalid variable, or an *output_dir*
        inside another project without *nested*.
    :raises ProjectExistsError: when the target directory exists.
    """
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    from . import upgrade

    check_name(name)
    template = template or template_dir()
    variables = template_variables(template)
    context = dict(extra_context or {})
    if framework is not None:
        if context.get("framework", framework) != framework:
            raise ConfigError(f"--template {framework} and framework={context['framework']}"
                              " disagree; give one of them")
        context["framework"] = framework
    context = _check_context(context, variables)
    chosen = context.get("framework")
    if chosen and "description" not in context:
        description = {info.name: info.description for info in list_templates(template)}.get(chosen)
        if description:
            context["description"] = description
    parent = (output_dir or Path.cwd()).resolve()
    target = parent / name
    if target.exists():
        raise ProjectExistsError(f"{target} already exists; choose another name or remove it")
    enclosing = enclosing_project(parent)
    if enclosing is not None and not nested:
        raise ConfigError(f"{parent} is inside the byoc project {enclosing} (its byoc.toml):"
                          f" a project in it would be part of that one's directory; create it"
                          f" elsewhere with --output-dir DIR, or add --nested to put it there anyway")
    if not no_input:
        context = ask(name, context, variables)
    if context.get("framework") == "r" and context.get("multi_model") == "yes":  # as the hook says
        raise ConfigError("multi_model=yes needs a Python template: the R server answers only /ping"
                          " and /invocations, not SageMaker's multi-model API")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    # cookiecutter writes each hook to a NamedTemporaryFile(delete=False) it never removes:
    # its temporary files go to a scratch folder of ours, removed below
    scratch = tempfile.mkdtemp(prefix="byoc-new-")
    saved_tempdir = tempfile.tempdir
    tempfile.tempdir = scratch
    try:
        answers = {**context, "project_slug": name}
        rendered = Path(cookiecutter(str(template), no_input=True, output_dir=str(staging),
                                     extra_context=answers))
        # what it was rendered from, and the pristine render: the base of a later byoc upgrade
        upgrade.record(rendered, template, upgrade.full_context(template, answers))
        try:
            rendered.rename(target)  # atomic; fails if the target appeared meanwhile
        except OSError as exc:
            raise ProjectExistsError(f"cannot create {target}: {exc.strerror}") from exc
    except CookiecutterException as exc:
        raise ByocError(f"cannot render the template: {exc}") from exc
    finally:
        tempfile.tempdir = saved_tempdir
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def enclosing_project(directory: Path) -> Path | None:
    """The root of the project *directory* is in or under (the nearest ``byoc.toml``), or None."""
    from ..project import CONFIG_FILE

    for candidate in (directory, *directory.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return None


def _check_context(context: dict[str, str], variables: Mapping[str, object]) -> dict[str, str]:
    for key, value in context.items():
        if key not in variables or key == "project_slug":
            settable = ", ".join(k for k in variables if k != "project_slug")
            raise ConfigError(f"unknown template variable {key!r} (can set: {settable})")
        check_value(key, value, variables)
    return context


def check_value(key: str, value: str, variables: Mapping[str, object]) -> str:
    """Return *value* if the template variable *key* may take it; :raises ConfigError: otherwise."""
    from ..aws import REGION_PATTERN
    from ..push.ecr import REPOSITORY_PATTERN

    choices = variables.get(key)
    if isinstance(choices, list) and value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}"
                          + (" (byoc new --list-templates)" if key == "framework" else ""))
    if key == "program" and not (value.isidentifier() and value.isascii()):
        raise ConfigError(f"program must be a Python identifier, got {value!r}")
    if key == "aws_region" and not REGION_PATTERN.fullmatch(value):
        raise ConfigError(f"aws_region must be an AWS region name (e.g. us-east-1), got {value!r}")
    if key == "ecr_repository" and not (REPOSITORY_PATTERN.fullmatch(value)
                                        and 2 <= len(value) <= 256):
        raise ConfigError(f"ecr_repository must be a valid ECR repository name (lower-case letters,"
                          f" digits and . _ - /, 2 to 256 characters), got {value!r}")
    return value


#: What is asked for each variable; the others are asked by their name.
QUESTIONS = {"description": "Description", "program": "Program directory (a Python identifier)",
             "framework": "Framework", "aws_region": "AWS region",
             "ecr_repository": "ECR repository"}


def ask(name: str, given: Mapping[str, str], variables: Mapping[str, object],
        prompt: Callable[..., Any] | None = None, interactive: bool | None = None) -> dict[str, str]:
    """Ask for every template variable not in *given* (NAME is never asked: it is the slug).

    Each answer is checked as soon as it is given: on a terminal a bad answer is asked again;
    otherwise (answers piped in) it is an error.

    :param prompt: ``click.prompt`` or a stand-in.
    :raises ConfigError: for a bad answer when not *interactive*.
    """
    import click
    from cookiecutter.environment import StrictEnvironment
    from cookiecutter.prompt import render_variable

    prompt = prompt or click.prompt
    if interactive is None:
        interactive = sys.stdin.isatty()
    environment = StrictEnvironment(context={})
    context: dict[str, Any] = {**variables, **given, "project_slug": name}
    answers = dict(given)
    for key, raw in variables.items():
        if key == "project_slug" or key in given:
            continue
        choices = [str(choice) for choice in raw] if isinstance(raw, list) else None
        default = choices[0] if choices else str(render_variable(environment, raw, context))

        def convert(value: str, key: str = key) -> str:
            try:
                return check_value(key, value.strip(), variables)
            except ConfigError as exc:
                if interactive:
                    raise click.BadParameter(exc.message) from None
                raise

        text = QUESTIONS.get(key, key)
        if choices and len(choices) > 1:
            text += f" ({', '.join(choices)})"
        answer = prompt(text, default=default, value_proc=convert, show_default=True)
        answers[key] = context[key] = answer
    return answers
