"""The import contract of docs/architecture.md, enforced: every import of every module (function-level
ones included) must be an edge the table allows, and the live process loads no training code."""
import ast
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "miro_edge"
DOC = ROOT / "docs" / "architecture.md"
CORE_MODULES = {"config", "errors", "recorder", "events", "utils", ""}  # "" = the package root


def allowed_table(doc: Path = DOC) -> Dict[str, Set[str]]:
    """unit -> units it may import, read from the markdown table (the doc is the contract)."""
    units: Dict[str, Set[str]] = {}
    rows = [line for line in doc.read_text().splitlines() if line.startswith("| ")]
    for line in rows[1:]:  # skip the header row
        cells = [c.strip() for c in line.strip("|").split("|")]
        unit = cells[0].strip("`")
        targets = set(re.findall(r"`([A-Za-z_]+)`", cells[1]))
        if "every unit" in cells[1]:
            targets = {"*"}
        units[unit] = targets
    return units


def unit_of(module: str) -> str:
    """``miro_edge.memory.store`` -> ``memory``; core modules -> ``core``."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return "core" if name in CORE_MODULES else name


def imports_of(path: Path, module: str) -> List[str]:
    """Every miro_edge module ``path`` imports, anywhere in the file (relative imports resolved)."""
    found = []
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            found.extend(f"{target}.{a.name}" for a in node.names)  # from pkg import submodule
    return [name for name in found if name == "miro_edge" or name.startswith("miro_edge.")]


def violations(package_dir: Path, table: Dict[str, Set[str]]) -> List[str]:
    out = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        src = unit_of(module)
        if src not in table:
            out.append(f"{module}: unit {src!r} is not in the table of docs/architecture.md")
            continue
        allowed = table[src]
        seen: Set[str] = set()
        for target in imports_of(path, module):
            dst = unit_of(target)
            if dst in ("core", src) or "*" in allowed or dst in allowed or dst in seen:
                continue
            seen.add(dst)  # one line per forbidden unit and module
            out.append(f"{module} ({src}) imports {target} ({dst})")
    return out


def test_every_import_is_an_edge_the_architecture_allows():
    found = violations(PACKAGE, allowed_table())
    assert not found, "\n".join(found)


def test_the_table_names_every_unit_of_the_package():
    table = allowed_table()
    units = {unit_of("miro_edge." + p.stem) for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        unit_of("miro_edge." + p.name) for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert units - set(table) == set(), "units missing from docs/architecture.md"


@pytest.mark.parametrize("edge", [
    ("infer/base.py", "from miro_edge.train.trainer import Trainer"),
    ("infer/live.py", "def f():\n    import miro_edge.export.pipeline\n"),  # a function-level import
    ("trt/builder.py", "from miro_edge.infer import live"),
    ("model/checkpoint.py", "def f():\n    from ..memory import em\n"),  # relative import
])
def test_the_contract_fails_when_a_forbidden_edge_is_added(tmp_path, edge):
    """The checker is not vacuous: adding back an edge the layers forbid is reported."""
    copy = tmp_path / "miro_edge"
    shutil.copytree(str(PACKAGE), str(copy), ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / edge[0]
    target.write_text(target.read_text() + "\n\n" + textwrap.dedent(edge[1]) + "\n")
    found = violations(copy, allowed_table())
    assert len(found) == 1 and edge[0].split("/")[0] in found[0], found


LIVE_PROBE = r"""
import sys, json
from pathlib import Path
from miro_edge.infer.live import LiveConfig, registry_live_loop
from miro_edge.infer.sources import SyntheticSource

frames = SyntheticSource((1, 8, 8), fps=None, n_frames=20, seed=0)
got = []
with registry_live_loop(sys.argv[1], frames, engine="onnxruntime", config=LiveConfig(),
                        on_prediction=got.append) as loop:
    stats = loop.run(max_frames=20)
loaded = sorted(m for m in sys.modules if m.startswith("miro_edge.") or m == "torch" or m.startswith("torch."))
print(json.dumps({"frames": stats.frames, "predictions": len(got), "modules": loaded}))
"""


def test_the_live_process_imports_no_training_code(tmp_path, ckpt_factory):
    """A fresh interpreter serves a published ONNX model: no train, export or controller module and
    not torch is imported on the live path."""
    pytest.importorskip("onnxruntime")
    from miro_edge.export.pipeline import export_checkpoint, publish_model
    from miro_edge.registry import ModelRegistry

    ckpt = ckpt_factory("cnn2d")
    result = export_checkpoint(ckpt, tmp_path / "export", engine="never")
    publish_model(ModelRegistry(tmp_path / "registry"), result.onnx.path, checkpoint=ckpt, force=True)
    out = subprocess.run([sys.executable, "-c", LIVE_PROBE, str(tmp_path / "registry")], check=True,
                         capture_output=True, text=True, cwd=str(tmp_path)).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["frames"] == 20 and report["predictions"] == 20
    bad = [m for m in report["modules"] if m.split(".")[1:2] in (["train"], ["export"], ["controller"])
           or m == "torch" or m.startswith("torch.")]
    assert bad == [], bad
    assert "miro_edge.infer.ort_engine" in report["modules"]  # the probe did serve through ONNX Runtime
