"""Refuse names SageMaker or ECR would refuse, before anything is written."""

import re
import sys

SLUG = "{{ cookiecutter.project_slug }}"
PROGRAM = "{{ cookiecutter.program }}"
FRAMEWORK = "{{ cookiecutter.framework }}"
MULTI_MODEL = "{{ cookiecutter.multi_model }}"

if not re.fullmatch(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,62}", SLUG):
    sys.exit(f"Error: project name {SLUG!r} must be 1-63 lower-case letters, digits and single"
             " hyphens, starting with a letter and not ending with a hyphen")
if not PROGRAM.isidentifier():
    sys.exit(f"Error: program {PROGRAM!r} must be a Python identifier (letters, digits, _)")
if MULTI_MODEL == "yes" and FRAMEWORK == "r":
    sys.exit("Error: multi_model=yes needs a Python template: the R server answers only"
             " /ping and /invocations, not SageMaker's multi-model API")
