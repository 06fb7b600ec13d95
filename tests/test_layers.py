"""Data flows one way: no module imports from a layer above its own, and no module grows past ~400 lines."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src" / "peftlab"

LAYERS = (
    ("errors", "config", "cache"),
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
