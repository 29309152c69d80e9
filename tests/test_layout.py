"""The library's shape: contract facts in one module, imports in one direction, no cycles,
no printing outside the CLI.

Read from the source with :mod:`ast`, so a violation names the file and line.
"""

from __future__ import annotations

import ast
import importlib
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import byoc

SRC = Path(byoc.__file__).resolve().parent
#: SageMaker facts that only contract.py may spell (substrings of string literals).
CONTRACT_STRINGS = ("/opt/ml", "linux/amd64", "arn:aws:sagemaker:")
#: ... and whole literals.
CONTRACT_VALUES: tuple[object, ...] = ("SAGEMAKER_BASE_DIR", "SAGEMAKER_BIND_TO_PORT", 8080,
                                       6 * 1024 * 1024)
#: The layers, lowest first: a module may import its own layer or a lower one, never a higher.
#: Every package and top-level module is named (test_every_module_has_a_layer).
LAYERS = [
    {"byoc.errors", "byoc.contract", "byoc.archive", "byoc.say"},
    {"byoc.project", "byoc._docker", "byoc.aws", "byoc.invoke", "byoc.backends",
     "byoc.job"},
    {"byoc.local", "byoc.images", "byoc.scaffold", "byoc.push", "byoc.doctor"},
    {"byoc.validate", "byoc.bench", "byoc.tune", "byoc.transform", "byoc.sagemaker"},
    {"byoc.cli", "byoc.__main__", "byoc"},
]
#: The features: each stands on job/, local/, backends/ and the layers below, never on another.
FEATURES_APART = ("byoc.validate", "byoc.bench", "byoc.tune", "byoc.transform", "byoc.sagemaker")
#: Where a training job travels only as a JobDefinition: no ``**`` parameter (a keyword bag).
NO_KEYWORD_BAGS = ("byoc.job", "byoc.local", "byoc.tune", "byoc.validate", "byoc.bench",
                   "byoc.transform")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative.parts[0] == "template":  # the container template mirrors the contract itself
            continue
        parts = ["byoc", *relative.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in [tree, *ast.walk(tree)]:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _literals(path: Path) -> Iterator[tuple[int, object]]:
    """Every constant in *path* that is not a docstring (f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            yield node.lineno, node.value
        elif isinstance(node, ast.BinOp) and all(
                isinstance(part, ast.BinOp | ast.Constant | ast.operator) for part in ast.walk(node)):
            # a product of numbers such as 6 * 1024 * 1024, folded
            yield node.lineno, eval(compile(ast.Expression(node), str(path), "eval"))


def _imports(name: str) -> set[str]:
    """The byoc modules *name* imports, anywhere in it (functions and TYPE_CHECKING included)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                child = f"{module}.{alias.name}"
                found.add(child if child in MODULES else module)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(name == top or name.startswith(top + ".") for top in layer if top != "byoc"):
            return index
        if name in layer:
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def _leaks(path: Path) -> list[str]:
    found = sorted(_literals(path), key=lambda item: item[0])
    return [f"{path.name}:{line}: {value!r}" for line, value in found
            if isinstance(value, str) and any(fact in value for fact in CONTRACT_STRINGS)
            or (value in CONTRACT_VALUES and not isinstance(value, bool))]


def test_the_contract_facts_live_only_in_contract_py() -> None:
    leaks = [leak for name, path in MODULES.items() if name != "byoc.contract" for leak in _leaks(path)]
    assert leaks == [], "use byoc.contract instead of spelling these:\n" + "\n".join(leaks)


def test_the_check_sees_a_leak_but_not_a_docstring(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('"""Docs may say /opt/ml."""\n\n\ndef f() -> str:\n    """Or /opt/ml."""\n'
                      '    return f"{1}/opt/ml/model"\n\n\nPORT = 8080\nLIMIT = 6 * 1024 * 1024\n',
                      encoding="utf-8")
    assert _leaks(module) == ["module.py:6: '/opt/ml/model'", "module.py:9: 8080",
                              "module.py:10: 6291456"]


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_a_cycle_is_seen() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == ["a -> b -> c -> a"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    layer = _layer(name)
    upward = sorted(target for target in GRAPH[name] if _layer(target) > layer)
    assert upward == [], f"{name} (layer {layer}) imports from a higher layer"


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        _layer(name)


def test_features_do_not_import_each_other() -> None:
    crossing = sorted(f"{name} -> {target}" for name in MODULES for target in GRAPH[name]
                      for one in FEATURES_APART for other in FEATURES_APART
                      if one != other and _in(name, one) and _in(target, other))
    assert crossing == [], "features meet only in job/, local/ and the layers below"


def test_sagemaker_runs_no_local_engine() -> None:
    engine = sorted(f"{name} -> {target}" for name in MODULES if _in(name, "byoc.sagemaker")
                    for target in GRAPH[name] if _in(target, "byoc.local"))
    assert engine == [], "a SageMaker job shares only job/ with a local one"


def _keyword_bags(path: Path) -> list[str]:
    """Functions that take ``**`` (a keyword bag) and calls that splat a mapping into ``train``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.args.kwarg is not None:
            found.append(f"{path.name}:{node.lineno}: def {node.name}(**{node.args.kwarg.arg})")
        elif isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "train" \
                and any(keyword.arg is None for keyword in node.keywords):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node.func)}(**...)")
    return found


def test_below_the_cli_a_job_travels_as_a_job_definition() -> None:
    bags = [bag for name, path in MODULES.items()
            if any(_in(name, package) for package in NO_KEYWORD_BAGS)
            # a Docker SDK call's keywords passed through with a label added; job.json's fields
            and name not in ("byoc.validate.common", "byoc.local.record")
            for bag in _keyword_bags(path)]
    assert bags == [], "pass a JobDefinition (and a LocalRun), not keywords"


def test_the_keyword_bag_check_sees_a_bag(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("def run(**options):\n    return train(backend=1, **options)\n", encoding="utf-8")
    assert _keyword_bags(module) == ["module.py:1: def run(**options)", "module.py:2: train(**...)"]


def test_the_graph_sees_relative_imports() -> None:
    assert "byoc.bench.result" in GRAPH["byoc.bench.report"]
    assert "byoc.cli.options" in GRAPH["byoc.cli.local"]
    assert "byoc.local" in GRAPH["byoc.cli.local"]
    assert "byoc.job" in GRAPH["byoc.local.train"]
    assert "byoc.contract" in GRAPH["byoc.backends.process"]


def _prints(path: Path) -> list[str]:
    """Calls of print() or sys.stdout/stderr.write outside a ``main`` (a module run as a program)."""
    found = []

    def visit(node: ast.AST, in_main: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_main = in_main or node.name == "main"
        if isinstance(node, ast.Call) and not in_main:
            called = ast.unparse(node.func)
            if called == "print" or called in ("sys.stdout.write", "sys.stderr.write"):
                found.append(f"{path.name}:{node.lineno}: {called}")
        for child in ast.iter_child_nodes(node):
            visit(child, in_main)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def test_the_library_does_not_print() -> None:
    printing = [line for name, path in MODULES.items()
                if not (name == "byoc.cli" or name.startswith("byoc.cli.")) for line in _prints(path)]
    assert printing == [], "take a say/log callback (byoc.say.Say) instead"


def test_the_print_check_sees_a_print(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("import sys\n\n\ndef f() -> None:\n    print('x')\n    sys.stderr.write('y')\n\n\n"
                      "def main() -> None:\n    print('the program speaks')\n", encoding="utf-8")
    assert _prints(module) == ["module.py:5: print", "module.py:6: sys.stderr.write"]


def _stdlib_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found


def test_byoc_toml_is_parsed_only_in_project_py() -> None:
    parsers = sorted(name for name, path in MODULES.items() if "tomllib" in _stdlib_imports(path))
    assert parsers == ["byoc.project"], "take your section from Project.config (ProjectConfig)"


# ---- house rules: one error module, one Say, no print by default, private modules kept private,
# AWS plumbing in byoc.aws --------------------------------------------------------------------------
#
# Exceptions to each rule, by name (none today):

#: Error classes defined outside errors.py, by class name.
ERRORS_ELSEWHERE: set[str] = set()
#: Modules that may still declare the Say callback type themselves.
SAY_ELSEWHERE: set[str] = set()
#: (importer, private module) pairs still allowed.
PRIVATE_IMPORTS: set[tuple[str, str]] = set()


def _stray_errors(module: types.ModuleType) -> list[str]:
    """Public exception classes *module* defines itself (private ones, and KeyboardInterrupt's
    kin, are control-flow signals)."""
    return sorted(f"{module.__name__}.{name}" for name, value in vars(module).items()
                  if isinstance(value, type) and issubclass(value, Exception)
                  and value.__module__ == module.__name__ and not name.startswith("_"))


def test_every_error_class_is_defined_in_errors_py() -> None:
    stray = [found for name in MODULES if name not in ("byoc.errors", "byoc.__main__")
             for found in _stray_errors(importlib.import_module(name))
             if found.rpartition(".")[2] not in ERRORS_ELSEWHERE]
    assert stray == [], "define errors in byoc/errors.py, as ByocError subclasses"


def test_every_error_is_a_byoc_error() -> None:
    errors = importlib.import_module("byoc.errors")
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, BaseException)
               and value.__module__ == "byoc.errors"]
    assert len(classes) > 20
    assert [cls.__name__ for cls in classes if not issubclass(cls, errors.ByocError)] == []


def test_the_error_check_sees_a_stray_error() -> None:
    module = types.ModuleType("module")
    exec("class BadError(ValueError):\n    pass\n\n\nclass _Signal(Exception):\n    pass\n\n\n"
         "Alias = KeyError\n", module.__dict__)
    assert _stray_errors(module) == ["module.BadError"]


def _say_declarations(path: Path) -> list[str]:
    """Module-level ``X = Callable[[str], None]`` (Say under any name), or a ``Say``/``quiet``/
    ``_quiet`` of its own."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [ast.unparse(target) for target in targets]
            if value is not None and ast.unparse(value).endswith("Callable[[str], None]") \
                    or "Say" in names:
                found.append(f"{path.name}:{node.lineno}: {', '.join(names)}")
        elif isinstance(node, ast.FunctionDef) and node.name in ("quiet", "_quiet"):
            found.append(f"{path.name}:{node.lineno}: {node.name}")
    return found


def test_say_is_declared_only_in_say_py() -> None:
    declared = [line for name, path in MODULES.items()
                if name not in ("byoc.say", *SAY_ELSEWHERE) for line in _say_declarations(path)]
    assert declared == [], "import Say and quiet from byoc.say"


def test_the_say_check_sees_a_declaration(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("from collections.abc import Callable\n\nLog = Callable[[str], None]\n"
                      "Sink = Callable[[str, str], None]\n\n\ndef _quiet(message: str) -> None:\n"
                      "    pass\n\n\ndef f(say: Callable[[str], None]) -> None:\n    say('x')\n",
                      encoding="utf-8")
    assert _say_declarations(module) == ["module.py:3: Log", "module.py:7: _quiet"]


def _print_values(path: Path) -> list[str]:
    """``print`` used as a value (a default, an argument, an assignment) rather than called."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return [f"{path.name}:{node.lineno}: print" for node in ast.walk(tree)
            if isinstance(node, ast.Name) and node.id == "print" and id(node) not in called]


def test_the_library_does_not_pass_print() -> None:
    passed = [line for name, path in MODULES.items()
              if not (name == "byoc.cli" or name.startswith("byoc.cli.")) for line in _print_values(path)]
    assert passed == [], "default to byoc.say.quiet; the CLI passes where to speak"


def test_the_print_value_check_sees_a_default(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("def f(say=print) -> None:\n    say('x')\n\n\ndef g() -> None:\n"
                      "    f(say=print)\n    print('called, seen by the other check')\n",
                      encoding="utf-8")
    assert _print_values(module) == ["module.py:1: print", "module.py:6: print"]


def _private_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, module) where *module* is ``_private`` to a package the importer is not in.

    ``a.b._c`` belongs to ``a.b``: only ``a.b`` and the modules under it import it. The CLI is a
    shell over the library's public names, so it imports no ``_private`` module of the library
    (``byoc._docker`` included)."""
    found = []
    for importer, targets in graph.items():
        for target in targets:
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_")]
            if not private:
                continue
            owner = ".".join(parts[:private[0]])
            inside = importer == owner or importer.startswith(owner + ".")
            in_cli = importer == "byoc.cli" or importer.startswith("byoc.cli.")
            if not inside or in_cli and not (owner == "byoc.cli" or owner.startswith("byoc.cli.")):
                found.append((importer, target))
    return sorted(found)


def test_private_modules_are_imported_only_from_their_package() -> None:
    leaks = [pair for pair in _private_imports(GRAPH) if pair not in PRIVATE_IMPORTS]
    assert leaks == [], "import the package's public names instead"


def test_the_private_check_sees_a_leak() -> None:
    graph = {"byoc.sagemaker.batch": {"byoc.sagemaker._aws", "byoc._docker"},
             "byoc.tune.runner": {"byoc.sagemaker._aws", "byoc._jobs"},
             "byoc.cli.sagemaker": {"byoc._jobs", "byoc.sagemaker"}}
    assert _private_imports(graph) == [("byoc.cli.sagemaker", "byoc._jobs"),
                                       ("byoc.tune.runner", "byoc.sagemaker._aws")]


#: What sets up or translates AWS calls: only byoc.aws may spell it.
AWS_PLUMBING = ("boto3.Session", "botocore.session.Session", "botocore.config", "ClientError",
                "NoCredentialsError", "ProfileNotFound", "get_scoped_config")
#: The generic functions byoc.aws defines, and no other module.
AWS_FUNCTIONS = ("resolve_region", "client_config", "call", "lookup", "session", "_client_error")


def _aws_plumbing(path: Path) -> list[str]:
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Attribute | ast.Name):
            names = [ast.unparse(node)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("boto3", "botocore")):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for text in names:
            if any(text == item or text.startswith(item + ".") or text.endswith("." + item)
                   for item in AWS_PLUMBING):
                found.add(f"{path.name}:{node.lineno}: {text}")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in AWS_FUNCTIONS:
            found.add(f"{path.name}:{node.lineno}: def {node.name}")
    return sorted(found, key=lambda line: (int(line.split(":")[1]), line))


def test_generic_aws_code_lives_in_aws_py() -> None:
    elsewhere = [line for name, path in MODULES.items() if name != "byoc.aws"
                 for line in _aws_plumbing(path)]
    assert elsewhere == [], "use byoc.aws (session, client, call, lookup, resolve_region)"
    assert _aws_plumbing(MODULES["byoc.aws"])  # the check looks at what aws.py holds
    assert "byoc.aws" in GRAPH["byoc.push.ecr"] and "byoc.aws" in GRAPH["byoc.sagemaker._aws"]


def test_the_aws_check_sees_plumbing(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("import botocore.config\nfrom botocore.exceptions import ClientError\n\n\n"
                      "def resolve_region() -> str:\n    return 'us-east-1'\n\n\n"
                      "def f(bx: object) -> None:\n    import boto3\n\n    boto3.Session()\n"
                      "    print(bx.ClientError)\n", encoding="utf-8")
    assert _aws_plumbing(module) == [
        "module.py:1: botocore.config", "module.py:2: botocore.exceptions.ClientError",
        "module.py:5: def resolve_region", "module.py:12: boto3.Session",
        "module.py:13: bx.ClientError"]


#: At most this many top-level modules in src/byoc (besides __init__ and __main__): the top level
#: holds the ground layer and the few modules every feature shares; the rest lives in packages.
MAX_TOP_LEVEL_MODULES = 12


def test_the_top_level_stays_small() -> None:
    top = sorted(path.stem for path in SRC.glob("*.py") if path.stem not in ("__init__", "__main__"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} top-level modules: {', '.join(top)}"
