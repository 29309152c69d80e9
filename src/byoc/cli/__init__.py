"""The ``byoc`` command: a thin layer of options over the library API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import contract, images, scaffold
from ..errors import ConfigError
from ..project import Project
from .bench import bench_command
from .doctor import doctor_command
from .local import local_group
from .options import ByocGroup, echo_err, pairs
from .progress import TerminalProgress
from .sagemaker import sagemaker_group
from .transform import transform_command
from .tune import describe_command, tune_command
from .validate import validate_command


@click.group(cls=ByocGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="byoc")
def cli() -> None:
    """Build, run locally and ship Amazon SageMaker bring-your-own-container images."""


@cli.command()
@click.argument("name", required=False)
@click.option("--template", "-T", metavar="NAME",
              help="The project template: sklearn (default), xgboost, pytorch, ...;"
                   " --list-templates lists them. Sets the framework variable.")
@click.option("--list-templates", is_flag=True, help="List the templates, one line each, and exit.")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Where to create the project directory.")
@click.option("--no-input", is_flag=True, help="Take the template's defaults; do not prompt.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set a template variable (program, framework, multi_model, aws_region,"
                   " ecr_repository, description). Repeatable.")
@click.option("--nested", is_flag=True,
              help="Create the project even inside another byoc project (refused otherwise).")
def new(name: str | None, template: str | None, list_templates: bool, output_dir: Path,
        no_input: bool, settings: tuple[str, ...], nested: bool) -> None:
    """Create the project NAME: a SageMaker container with train and serve."""
    if list_templates:
        found = scaffold.list_templates()
        width = max(len(info.name) for info in found)
        for info in found:
            default = " (default)" if info.name == scaffold.DEFAULT_TEMPLATE else ""
            click.echo(f"{info.name:<{width}}  {info.summary}{default}")
        return
    if name is None:
        raise click.UsageError("missing argument NAME (or --list-templates)")
    target = scaffold.new_project(name, output_dir=output_dir, no_input=no_input,
                                  extra_context=pairs(settings, "--set"), framework=template,
                                  nested=nested)
    echo_err(f"Created {target}. Next: cd {target} && make test")
    click.echo(str(target))


@cli.command()
@click.argument("project", required=False, default=".",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show the diff and the summary; write nothing.")
@click.option("--force", is_flag=True,
              help="Upgrade even with uncommitted changes (or outside git): no easy undo.")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              metavar="PATH",
              help="For a project made before byoc recorded its template: the older byoc checkout,"
                   " unpacked wheel or template directory it was made from (the merge's base).")
@click.option("--to", "to", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="PATH",
              help="The template to upgrade to (default: this byoc's): an older or newer byoc"
                   " checkout, unpacked wheel or template directory.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="With --from: a template answer byoc.toml does not tell (e.g. framework=xgboost,"
                   " multi_model=yes). Repeatable.")
def upgrade(project: Path, dry_run: bool, force: bool, source: Path | None, to: Path | None,
            settings: tuple[str, ...]) -> None:
    """Bring PROJECT (default: here) onto this byoc's template, keeping your edits.

    Files you never touched are replaced, edited ones merged three-way with git merge-file;
    conflicts get markers and are listed, and the exit status is 1.
    """
    from rich.console import Console
    from rich.table import Table

    from ..scaffold.upgrade import upgrade as run_upgrade

    answers = pairs(settings, "--set")
    variables = scaffold.template_variables()
    for key, value in answers.items():
        if key not in variables or key == "project_slug":
            raise ConfigError(f"--set {key}: not a template variable (can set:"
                              f" {', '.join(k for k in variables if k != 'project_slug')})")
        scaffold.check_value(key, value, variables)
    result = run_upgrade(project, scaffold.template_dir(), dry_run=dry_run, force=force,
                         source=source, answers=answers, to=to)
    if dry_run and result.diff:
        click.echo(result.diff, nl=False)
    table = Table(title=f"byoc upgrade of {result.project.name}: {result.from_version}"
                        f" -> {result.to_version}{' (dry run: nothing written)' if dry_run else ''}")
    for column in ("change", "file", "note"):
        table.add_column(column)
    for change in sorted(result.changes, key=lambda c: (KIND_ORDER.index(c.kind), c.path)):
        table.add_row(change.kind, change.path, change.note)
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts().items())
    click.echo(f"{counts}")
    if result.conflicts and dry_run:
        echo_err(f"Error: {len(result.conflicts)} conflict(s) the upgrade would leave to resolve"
                 f" by hand (nothing written): {', '.join(result.conflicts)}")
        sys.exit(1)
    if result.conflicts:
        echo_err(f"Error: {len(result.conflicts)} conflict(s) to resolve by hand (look for <<<<<<<):"
                 f" {', '.join(result.conflicts)}")
        sys.exit(1)
    if not dry_run and all(change.kind == "kept" for change in result.changes):
        echo_err("Already up to date: no file of the template changed.")
    elif not dry_run:
        echo_err("Upgraded. Review with git diff, run make test, then commit.")


#: The order the upgrade summary lists its changes in.
KIND_ORDER = ("conflict", "merged", "updated", "added", "removed", "kept")


@cli.command()
@click.argument("project", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--tag", "-t", help="Image reference to build (default: <image>:latest from byoc.toml).")
@click.option("--build-arg", multiple=True, metavar="KEY=VALUE", help="Docker build argument.")
@click.option("--platform", help=f"Target platform; SageMaker runs {contract.PLATFORM}. Another than"
                                 " the engine's own needs docker buildx (BuildKit).")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--network", help="Network for RUN steps (e.g. host).")
@click.option("--no-recorded-options", is_flag=True,
              help="Without --build-arg, --network or --platform, build with none (default: the"
                   " options of the project's last build).")
def build(project: Path | None, tag: str | None, build_arg: tuple[str, ...], platform: str | None,
          no_cache: bool, network: str | None, no_recorded_options: bool) -> None:
    """Build the project's Docker image, streaming the build log.

    Its options are remembered (.byoc/build.json): a later byoc build given none of --build-arg,
    --network and --platform builds with them again (any of them replaces them all), and when
    byoc local train|serve|bench or byoc push have to build the image themselves, they build it
    the same way."""
    loaded = Project.load(project)
    arguments = pairs(build_arg, "--build-arg")
    if not (build_arg or network or platform or no_recorded_options):
        recorded = images.recorded_options(loaded.root)
        how = images.describe_options(recorded)
        if how:
            echo_err(f"note: building with the options of the project's last build: {how}"
                     " (--no-recorded-options to build without them)")
            found = recorded.get("args")
            arguments = {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) \
                else {}
            network = recorded["network"] if isinstance(recorded.get("network"), str) else None
            platform = recorded["platform"] if isinstance(recorded.get("platform"), str) else None
    reference = images.build(loaded.root, tag=tag or f"{loaded.image}:latest",
                             build_args=arguments, platform=platform, no_cache=no_cache,
                             network=network, log=echo_err)
    # what builds the project's image by itself (byoc local train, byoc push) builds it this way
    images.record_options(loaded.root, build_args=arguments, network=network, platform=platform)
    click.echo(reference)


@cli.command()
@click.argument("project", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--image", help="Local image to push as it is (default: <image>:latest of byoc.toml,"
                               " built when missing or older than the project).")
@click.option("--repository", help="Repository (default: [aws] repository, else the image name).")
@click.option("--tag", "-t", help="Tag pushed alongside the digest (default: the git commit the"
                                  " image was built from, with -dirty-<time> for a changed tree; a"
                                  " UTC time when that is unknown).")
@click.option("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile,"
                               " then [aws] region).")
@click.option("--profile", help="AWS profile for the credentials.")
@click.option("--registry", metavar="HOST[:PORT]", help="Push to this OCI registry, not Amazon ECR.")
@click.option("--username", help="--registry: user to log in as.")
@click.option("--password-stdin", is_flag=True,
              help="--registry: read the password from standard input (else from"
                   " BYOC_REGISTRY_PASSWORD).")
@click.option("--no-create", is_flag=True, help="Fail if the ECR repository is missing.")
@click.option("--immutable-tags", is_flag=True, help="Create the ECR repository with immutable tags.")
@click.option("--scan-on-push/--no-scan-on-push", default=None,
              help="Scan images a created ECR repository receives (default: on).")
@click.option("--build-arg", multiple=True, metavar="KEY=VALUE",
              help="Build argument, when the image has to be built first.")
def push(project: Path | None, image: str | None, repository: str | None, tag: str | None,
         region: str | None, profile: str | None, registry: str | None, username: str | None,
         password_stdin: bool, no_create: bool, immutable_tags: bool, scan_on_push: bool | None,
         build_arg: tuple[str, ...]) -> None:
    """Push the image to Amazon ECR (or --registry): build it if needed, create the repository if
    missing, log in, tag and push. Prints the digest-pinned image URI for SageMaker last."""
    from ..push import registry as registry_api

    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    stderr = sys.stderr
    result = registry_api.push(
        registry_api.load_project(project, image=image), image=image, repository=repository,
        tag=tag, region=region, profile=profile, registry=registry, create=not no_create,
        immutable_tags=immutable_tags, scan_on_push=scan_on_push, username=username,
        password=password, build_args=pairs(build_arg, "--build-arg"), log=echo_err,
        progress=TerminalProgress(stderr) if stderr.isatty() else None)
    echo_err(f"Pushed {result.tagged_uri}")
    click.echo(result.uri)


# Every command is registered here, and only here.
local_group.add_command(bench_command)
local_group.add_command(tune_command)
local_group.add_command(describe_command)
local_group.add_command(transform_command)
cli.add_command(local_group)
cli.add_command(validate_command)
cli.add_command(sagemaker_group)
cli.add_command(doctor_command)


def main() -> None:
    cli.main(prog_name="byoc")


