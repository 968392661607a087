"""Who may import whom (docs/architecture.md): the layers are checked on the source, so a change
that reaches up a layer, or hides a cycle in a function-level import, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package -> what it must never import
FORBIDDEN = {
    "agents": ("django", "controlplane", "edgenodes", "ninja", "channels"),
    "controlplane/fleets": ("edgenodes", "controlplane.accounts", "controlplane.audit"),
    "controlplane/accounts": ("edgenodes",),
    "controlplane/audit": ("edgenodes",),
}
# Function-level imports of the project's own modules are allowed only where Django needs them.
LAZY_ALLOWED = {"controlplane/nodes/apps.py", "controlplane/accounts/apps.py"}


def imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, [node.module]


def sources(folder: str):
    return [p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts]


def test_each_layer_imports_only_the_layers_below_it():
    offences = []
    for folder, banned in FORBIDDEN.items():
        for path in sources(folder):
            for node, names in imports(path):
                for name in names:
                    if name.startswith(banned):
                        rel = path.relative_to(ROOT)
                        offences.append(f"{rel}:{node.lineno} imports {name}")
    assert not offences, "\n".join(offences)


def test_no_function_level_import_of_the_project_hides_a_cycle():
    offences = []
    for folder in ("controlplane", "edgenodes"):
        for path in sources(folder):
            rel = str(path.relative_to(ROOT))
            if rel in LAZY_ALLOWED:
                continue
            tree = ast.parse(path.read_text())
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (
                        node.level > 0
                        or (node.module or "").startswith(("controlplane", "edgenodes"))
                    ):
                        offences.append(f"{rel}:{node.lineno} imports {node.module} lazily")
    assert not offences, "\n".join(offences)
