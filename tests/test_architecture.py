"""The package map holds: imports run one way (commands -> jobs -> inference -> core -> data/models/codecs -> geometry
and errors), no module imports another that imports it back, and kp.errors is a leaf that pulls in nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kp

PACKAGE = Path(kp.__file__).resolve().parent

# Each layer may import its own and the layers below it, never one above.
LAYERS = [
    ["kp.cli", "kp.__main__", "kp"],  # kp: the package root, whose kp.load is the public API
    ["kp.train", "kp.predict", "kp.export", "kp.evaluation", "kp.viz", "kp.trajectories", "kp.refine"],
    ["kp.inference"],
    ["kp.build", "kp.module", "kp.config"],
    [
        "kp.data",
        "kp.formats",
        "kp.models",
        "kp.codecs",
        "kp.losses",
        "kp.unsupervised_losses",
        "kp.metrics",
        "kp.calibration",
    ],
    ["kp.geometry", "kp.errors", "kp.run_dir", "kp.markdown", "kp.defaults"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def kp_imports(path: Path) -> set[str]:
    """Every kp module this file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kp":
            for alias in node.names:  # `from kp.train import run_info` imports the module kp.train.run_info
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "kp")
    return found


FILES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
MODULES = set(FILES)
GRAPH = {name: kp_imports(path) & MODULES for name, path in FILES.items()}


def layer_of(module: str) -> int | None:
    """The layer of the longest matching prefix (kp.data.io -> kp.data); None for a module no layer names (the root
    `kp` names only kp/__init__.py, not every kp.* module)."""
    matches = [prefix for layer in LAYERS for prefix in layer if module == prefix or module.startswith(prefix + ".")]
    matches = [prefix for prefix in matches if prefix != "kp" or module == "kp"]
    if not matches:
        return None
    best = max(matches, key=len)
    return next(i for i, layer in enumerate(LAYERS) if best in layer)


def test_every_module_has_a_layer():
    assert [module for module in sorted(MODULES) if layer_of(module) is None] == []
    assert layer_of("kp.something_new") is None and layer_of("kp.data.io") == layer_of("kp.data")


def test_imports_point_down_the_layers():
    upward = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(target) < layer_of(module)
    ]
    assert upward == []


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_errors_is_a_leaf_that_imports_nothing_heavy():
    assert GRAPH["kp.errors"] == set()
    code = "import sys, kp.errors; print(sorted(m for m in ('torch', 'lightning', 'hydra', 'cv2') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_every_command_module_has_the_same_shape():
    from kp.cli import COMMANDS

    # common.py: what every command shares (parser, argument types, the one-line error wrapper)
    assert {path.stem for path in (PACKAGE / "cli").glob("*.py")} - {"__init__", "common"} == set(COMMANDS)
    for name in COMMANDS:
        tree = ast.parse((PACKAGE / "cli" / f"{name}.py").read_text())
        assert ast.get_docstring(tree), f"kp/cli/{name}.py: the docstring is the command's help"
        assert "kp.cli.common" in GRAPH[f"kp.cli.{name}"], f"kp/cli/{name}.py: its parser and error wrapper"
        functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "main" in functions and [a.arg for a in functions["main"].args.args] == ["argv"], name


def test_the_wheel_ships_every_package():
    """pyproject.toml names each package (the configs' folder, conf/, is mapped to kp.conf): a new kp/ subpackage
    must join the list or the installed kp would miss it."""
    tomllib = pytest.importorskip("tomllib")
    listed = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    on_disk = {module_name(path) for path in PACKAGE.rglob("__init__.py")}
    assert sorted(listed) == sorted(on_disk | {"kp.conf"})


ARCHITECTURE_PAGE = PACKAGE.parent / "docs" / "architecture.md"


def _page_block(heading: str) -> str:
    """The first fenced block after `heading` in docs/architecture.md."""
    text = ARCHITECTURE_PAGE.read_text()
    after = text[text.index(heading) :]
    return after.split("```", 2)[1]


def test_the_architecture_page_names_every_package_and_module():
    """docs/architecture.md's package map names every kp subpackage and top-level module (the first column), and
    nothing that is not there: the LAYERS above, which every module must belong to."""
    named = set()
    for line in _page_block("## The package map").splitlines():
        for word in line.split("  ")[0].split():
            if word.startswith("kp/"):
                named.add("kp." + word[3:].removesuffix("/").removesuffix(".py").replace("/", "."))
    assert "kp.__init__" in named
    assert sorted(named - {"kp.__init__"}) == sorted(prefix for layer in LAYERS for prefix in layer if prefix != "kp")


def test_the_architecture_pages_layers_are_the_tests():
    block = _page_block("Imports run one way")
    page_layers = [sorted(name.strip() for name in layer.split("/")) for layer in block.split("->")]
    assert page_layers == [sorted(prefix.removeprefix("kp.") for prefix in layer) for layer in LAYERS]
