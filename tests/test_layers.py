"""Data flows one way: no module imports from a layer above its own, and no module grows past ~400 lines."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src" / "peftlab"

LAYERS = (
    ("errors", "config", "cache", "pyparse"),
    ("data", "execution", "metrics", "runs"),
    ("projects",),
    ("tasks",),
    ("prompting", "models", "interop"),
    ("methods",),
    ("stages",),
    ("study", "report"),
    ("cli", "api", "__init__"),
)
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}
MAX_LINES = 400


def _top(module: str) -> str:
    """``peftlab.tasks.codegen.build`` -> ``tasks``; a module file's own name for top-level modules."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _modules():
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).with_suffix("")
        yield path, "peftlab." + ".".join(relative.parts)


def _is_peftlab(name: str) -> bool:
    # not peftlab_codec: the in-sandbox runners import a copy of a module written beside them under that name
    return name == "peftlab" or name.startswith("peftlab.")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module and _is_peftlab(node.module):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if _is_peftlab(alias.name))


def test_every_module_has_a_layer():
    missing = {_top(module) for _, module in _modules()} - set(LAYER)
    assert not missing, f"add {missing} to LAYERS"


@pytest.mark.parametrize("path, module", list(_modules()), ids=lambda value: str(value).rsplit("peftlab", 1)[-1])
def test_no_import_from_a_higher_layer(path, module):
    own = LAYER[_top(module)]
    upward = [name for name in _imports(path) if name != "peftlab" and LAYER[_top(name)] > own]
    assert not upward, f"{module} (layer {own}) imports {upward}"


def test_modules_stay_small():
    long = {str(path.relative_to(SOURCE)): n for path, _ in _modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def _module_graph() -> dict[str, set[str]]:
    """Module -> the peftlab modules it imports (``from peftlab.x import name`` counts as ``peftlab.x.name``
    when that is a module itself: importing a submodule by name is an edge to it)."""
    modules = {module for _, module in _modules()}
    modules |= {module.removesuffix(".__init__") for module in modules}  # a package is a module too
    graph = {}
    for path, module in _modules():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and _is_peftlab(node.module):
                names = {f"{node.module}.{alias.name}" for alias in node.names}
                edges |= (names & modules) or {node.module}
            elif isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if _is_peftlab(alias.name)}
        graph[module] = {edge for edge in edges if edge != module}
    for module in graph:  # "peftlab.x" names the package: its __init__
        graph[module] = {f"{edge}.__init__" if f"{edge}.__init__" in graph else edge for edge in graph[module]} & set(graph)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module], _ = 1, path.append(module)
        for edge in sorted(graph.get(module, ())):
            if state.get(edge) == 1:
                return path[path.index(edge):] + [edge]
            if edge not in state and (found := visit(edge)):
                return found
        state[module], _ = 2, path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_between_modules():
    """Within packages too (function-level imports included): a cycle hidden behind a function-level import
    is still a cycle."""
    graph = _module_graph()
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_design_md_states_the_package_s_shape():
    """docs/design.md, "The package, in numbers": the counts it states are the package's."""
    import re

    text = (SOURCE.parents[1] / "docs" / "design.md").read_text(encoding="utf-8")
    modules = sorted(path.stem for path in SOURCE.glob("*.py") if path.stem != "__init__")
    packages = sorted(path.parent.name for path in SOURCE.glob("*/__init__.py"))
    stated_modules = int(re.search(r"\*\*(\d+) top-level modules\*\*", text).group(1))
    stated_packages = int(re.search(r"\*\*(\d+) packages\*\*", text).group(1))
    assert (stated_modules, stated_packages) == (len(modules), len(packages)), (modules, packages)
    for name in modules + packages:
        assert f"`{name}`" in text, f"docs/design.md does not name {name}"
