"""Issue #17's house rules, checked on every run: at most ten top-level modules in bot/, no file
past about 300 lines without a reason written here, nothing imports upward, no import circles."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"
MAX_LINES = 320  # "about 300"
# A file past MAX_LINES, and why it reads better whole.
LONG = {
    "state/base.py": "the store's protocols and records: one table of every store call",
    "state/sqlite.py": "one class that implements every protocol (schema, rows, codes apart)",
    "state/redis.py": "one class that implements every protocol (scripts, codes apart)",
    "delivery/disk.py": "one response's three ways to send (one read, reads, zero-copy) around"
    " one count of what the client acknowledged: apart they would share its private state",
}
EDGES = ("bot.web", "bot.cli", "bot.app")
INNER = ("wechat", "keywords", "delivery", "state", "owner", "config", "logs")


def module_name(path: Path) -> str:
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is loaded (not inside functions or TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "bot" or name.startswith("bot.")}


def all_imports(path: Path) -> set[str]:
    """Every bot module a file names in an import, wherever it stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("bot.")}


def sources() -> list[Path]:
    return sorted(BOT.rglob("*.py"))


def test_bot_keeps_at_most_ten_top_level_modules() -> None:
    modules = [p.name for p in BOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) <= 10, sorted(modules)


def test_no_file_is_long_without_a_reason() -> None:
    long = {
        str(p.relative_to(BOT)): n
        for p in sources()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert set(long) <= set(LONG), {k: v for k, v in long.items() if k not in LONG}


def test_inner_packages_never_import_the_edges() -> None:
    upward = {
        module_name(p): sorted(name for name in all_imports(p) if name.startswith(EDGES))
        for package in INNER
        for p in (BOT / package).rglob("*.py")
    }
    assert {k: v for k, v in upward.items() if v} == {}


def test_there_are_no_import_circles() -> None:
    names = {module_name(p): p for p in sources()}
    graph = {
        name: {imp for imp in top_level_imports(path) if imp in names and imp != name}
        for name, path in names.items()
    }
    # A package's __init__ importing its own modules is how packages work; what a module
    # imports from its own package's __init__ is not a circle through the rest.
    for name in graph:
        graph[name] = {imp for imp in graph[name] if not name.startswith(imp + ".")}
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in path:
            raise AssertionError(" -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        path.append(name)
        for imp in sorted(graph[name]):
            visit(imp)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
