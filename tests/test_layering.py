"""Who may import whom: the table in docs/architecture.md ("Rooms, and who may import whom") is read
here and every import of every project module is checked against it, so the document and the code
cannot drift apart. A change that reaches into a room it may not, that adds a package the table
does not list, or that hides a cycle in a function-level import fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
TOP = ("wire", "agents", "controlplane", "edgefleet")
# Function-level imports of the project's own modules are allowed only where Django needs them.
LAZY_ALLOWED = {"controlplane/nodes/apps.py", "controlplane/accounts/apps.py"}


def table() -> dict[str, set[str]]:
    """package -> the packages it may import, in the document's order (lowest first)."""
    text = DOC.read_text()
    block = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        rows[cells[0].strip("`")] = set(re.findall(r"`([\w.]+)`", cells[2]))
    return rows


def package_of(module: str) -> str:
    parts = module.split(".")
    if (
        parts[0] == "controlplane"
        and len(parts) > 1
        and (ROOT / "controlplane" / parts[1]).is_dir()
    ):
        return ".".join(parts[:2])
    return parts[0]


def modules():
    for top in TOP:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield path, ".".join(parts)


def imported(path: Path, module: str):
    """(line, absolute module name) of every import of a project module in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            names = [base]
        else:
            continue
        for name in names:
            if name.split(".")[0] in TOP:
                yield node.lineno, name


def test_the_documented_table_is_ordered_so_no_two_packages_import_each_other():
    rows = table()
    assert len(rows) >= 10, "the table in docs/architecture.md was not found"
    seen: set[str] = set()
    for package, allowed in rows.items():
        assert allowed <= seen, f"{package} may import {sorted(allowed - seen)}, listed below it"
        seen.add(package)


def test_every_project_package_has_a_row_in_the_table():
    rows = table()
    missing = sorted({package_of(m) for _, m in modules()} - set(rows))
    assert not missing, f"packages missing from docs/architecture.md's table: {missing}"


def test_every_import_of_every_module_is_allowed_by_the_table():
    rows = table()
    offences = []
    for path, module in modules():
        mine = package_of(module)
        for line, name in imported(path, module):
            theirs = package_of(name)
            if theirs != mine and theirs not in rows.get(mine, set()):
                offences.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {name}")
    assert not offences, "\n".join(offences)


def test_the_agent_and_the_wire_contract_import_nothing_of_django():
    offences = []
    for top in ("wire", "agents"):
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                for name in names:
                    if name.split(".")[0] in ("django", "ninja", "channels", "sklearn", "scipy"):
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not offences, "\n".join(offences)


def test_no_function_level_import_of_the_project_hides_a_cycle():
    offences = []
    for path, _module in modules():
        rel = str(path.relative_to(ROOT))
        if rel.split("/")[0] not in ("controlplane", "edgefleet") or "migrations" in rel:
            continue
        if rel in LAZY_ALLOWED:
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (
                    node.level > 0 or (node.module or "").split(".")[0] in TOP
                ):
                    offences.append(f"{rel}:{node.lineno} imports {node.module} lazily")
    assert not offences, "\n".join(offences)
