"""The package's layers only import downward, and ``import smcwire`` stays light."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).parent.parent / "smcwire"
# lowest first; a module may import its own layer and the ones before it
LAYERS = ["model", "abi", "codec", "sources", "flows", "rules", "explain", "pipeline", "render", "cli"]


def _imports(path: Path) -> set[str]:
    """The smcwire subpackages a module imports (relative imports resolved)."""
    rel = path.relative_to(PKG.parent).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[: len(rel) - node.level])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts] if node.module else [parts + [a.name] for a in node.names]
            else:
                names = [node.module.split(".")] if node.module else []
            out |= {p[1] for p in names if len(p) > 1 and p[0] == "smcwire"}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("smcwire.")}
    return out


def test_layers_import_only_downward():
    for layer_index, layer in enumerate(LAYERS):
        allowed = set(LAYERS[: layer_index + 1])
        for path in (PKG / layer).rglob("*.py"):
            bad = {m for m in _imports(path) if m in LAYERS and m not in allowed}
            assert not bad, f"{path.relative_to(PKG)} imports higher layer(s) {bad}"


def test_import_smcwire_is_light():
    code = "import sys, smcwire; print(sorted(m for m in sys.modules if m.startswith(('construct', 'click', 'tabulate', 'smcwire.'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
