"""Keep the runtime of the chosen framework: R projects get the R program, the others Python's."""

import shutil
from pathlib import Path

FRAMEWORK = "{{ cookiecutter.framework }}"
PROGRAM = Path("container") / "{{ cookiecutter.program }}"
#: Where the template keeps the R program until it is moved to container/<program>.
R_PROGRAM = Path("container") / "r-program"
R_TESTS = Path("tests") / "testthat"
#: What only the Python runtime uses.
PYTHON_ONLY = [Path("requirements.txt"), Path("container") / "requirements.txt"]

if FRAMEWORK == "r":
    shutil.rmtree(PROGRAM)
    R_PROGRAM.rename(PROGRAM)
    for path in [*Path("tests").glob("*.py"), *PYTHON_ONLY]:
        path.unlink()
    shutil.rmtree("wheels", ignore_errors=True)  # offline Python wheels: not for R
else:
    shutil.rmtree(R_PROGRAM)
    shutil.rmtree(R_TESTS)

# An installed byoc's template may hold byte code (pip compiles the .py files it installs):
# none of it belongs in a new project.
for cache in sorted(Path(".").rglob("__pycache__"), reverse=True):
    shutil.rmtree(cache, ignore_errors=True)
for stray in Path(".").rglob("*.pyc"):
    stray.unlink()
