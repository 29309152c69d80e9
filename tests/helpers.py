"""What several test modules share besides fixtures: paths, the Docker switch, a build helper."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from byoc import images
from byoc.local import free_port as free_port

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The base image for test builds: python:3.11-slim-bookworm when it can be had,
#: else the Debian image .ci/run imports (see ENVIRONMENT in the README).
BASE_IMAGE_ENV = "BYOC_TEST_BASE_IMAGE"
REQUIRE_DOCKER_ENV = "BYOC_REQUIRE_DOCKER"
#: The probe project's image in this test session: a name of its own, so that test sessions
#: sharing one engine never remove each other's image.
PROBE_REPOSITORY = f"byoc-test-probe-{uuid.uuid4().hex[:8]}"


def build_project(root: Path, tag: str, base: str) -> str:
    """Build the project at *root* as *tag* on the base image *base*, quietly."""
    return images.build(root, tag=tag, build_args={"BASE_IMAGE": base}, network="host")


@contextmanager
def built_image(docker_client: Any, root: Path, tag: str, base: str) -> Iterator[str]:
    """The project at *root* built as *tag* for as long as the block runs, then removed."""
    build_project(root, tag, base)
    try:
        yield tag
    finally:
        docker_client.images.remove(tag, force=True)


def copy_probe(dest: Path) -> Path:
    """A private copy of tests/fixtures/probe whose byoc.toml names this session's probe image."""
    root = Path(shutil.copytree(FIXTURES / "probe", dest))
    config = root / "byoc.toml"
    config.write_text(config.read_text().replace('image = "byoc-test-probe"',
                                                 f'image = "{PROBE_REPOSITORY}"'))
    return root


def load_fixture(relative: str) -> ModuleType:
    """A Python file under tests/fixtures, loaded once by path (``fixtures`` is no package)."""
    name = "byoc_test_" + relative.removesuffix(".py").replace("/", "_")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / relative)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
