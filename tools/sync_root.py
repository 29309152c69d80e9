"""Re-render the default template over the repository root's example files.

The root's container/, local_test/, wheels/, Dockerfile, .dockerignore and byoc.toml are
the default project rendered, and the root Makefile starts with the rendered
Makefile; tests/test_root_example.py fails when they drift. Run this after
changing the template: python tools/sync_root.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("container", "local_test", "wheels", "Dockerfile", ".dockerignore", "byoc.toml")
MAKEFILE_MARK = "# ---- byoc's own targets (not part of the generated project) ----\n"


def render_default(into: Path) -> Path:
    from cookiecutter.main import cookiecutter

    return Path(cookiecutter(str(ROOT / "cookiecutter"), no_input=True, output_dir=str(into)))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rendered = render_default(Path(tmp))
        for name in COPIED:
            target = ROOT / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            source = rendered / name
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        own = (ROOT / "Makefile").read_text().partition(MAKEFILE_MARK)[2]
        (ROOT / "Makefile").write_text((rendered / "Makefile").read_text() + "\n" + MAKEFILE_MARK + own)
    print("root example re-rendered from cookiecutter/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
