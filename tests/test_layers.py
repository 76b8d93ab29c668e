"""The package's rooms: no import circles, no arrow up the layers, no module above its size."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hloba"
# lower layers never import higher ones; a layer may import its own and any lower one
LAYERS = {
    "base": 0,  # hloba/*.py: runtime, io, grid, channels, timeaxis, normalization, states, latent, config, ...
    "world": 1, "obs": 1, "models": 1, "forecast": 1, "ingest": 1,
    "ensemble": 2, "archive": 2,
    "assim": 3,
    "verify": 4,
    "entry": 5,  # the CLI and what it calls, the test factories
}
ENTRY = {"hloba.cli", "hloba.stages", "hloba.testing", "hloba.__main__"}
MAX_LINES = 350


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    if module in ENTRY:
        return LAYERS["entry"]
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else LAYERS["base"]


def _imports() -> dict[str, set[str]]:
    """Module -> the hloba modules it imports (at any depth of the file, lazy imports included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hloba"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("hloba"))
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _type_checking_only(path: Path) -> set[str]:
    """Modules imported only under ``if TYPE_CHECKING:`` (annotations, never run)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    out.add(sub.module)
    return out


def _runtime_graph() -> dict[str, set[str]]:
    graph = _imports()
    for name in graph:
        path = PACKAGE.parent / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = PACKAGE.parent / name.replace(".", "/") / "__init__.py"
        graph[name] -= _type_checking_only(path)
    return graph


def test_no_import_circles():
    graph = _runtime_graph()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package importing its own modules is not a circle
                continue
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_arrow_up_the_layers():
    up = sorted(f"{a} ({_layer(a)}) imports {b} ({_layer(b)})"
                for a, targets in _runtime_graph().items() for b in targets if _layer(b) > _layer(a))
    assert not up, "\n".join(up)


def test_every_module_is_small():
    big = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) >= MAX_LINES}
    assert not big, big


def test_the_stream_loop_names_no_method():
    from hloba.assim.methods import NAMES

    source = (PACKAGE / "assim" / "stream.py").read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    body = code.split('"""', 2)[2]  # after the module docstring
    named = [m for m in NAMES if f'"{m}"' in body or f"'{m}'" in body or f"== {m}" in body]
    assert not named, named
