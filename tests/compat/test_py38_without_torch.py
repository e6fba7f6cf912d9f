"""The package on CPython 3.8 without torch: it byte-compiles, imports, and ``miro-edge --help``
answers (the boards' Python; torch comes later, from NVIDIA's or our wheel).

Cheap stand-in for ``make compat`` inside ``make test``: it uses pyenv's CPython 3.8 and the small
``.venv-compat/py38-notorch`` venv that ``make test`` builds when that interpreter is present.
"""
import glob
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Optional

import pytest

from miro_edge import __version__

REPO = Path(__file__).resolve().parents[2]
NOTORCH_PY = REPO / ".venv-compat" / "py38-notorch" / "bin" / "python"


def pyenv_python38() -> Optional[str]:
    """CPython 3.8 from $MIRO_EDGE_PY38 or pyenv's versions folder, if any."""
    explicit = os.environ.get("MIRO_EDGE_PY38")
    if explicit:
        return explicit
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(os.path.join(root, "versions", "3.8.*", "bin", "python3.8")))
    return found[-1] if found else None


PY38 = pyenv_python38()
needs_py38 = pytest.mark.skipif(PY38 is None, reason="no CPython 3.8 here (pyenv versions/3.8.* or $MIRO_EDGE_PY38)")


@needs_py38
def test_every_module_byte_compiles_on_python38():
    code = textwrap.dedent("""
        import pathlib, sys
        assert sys.version_info[:2] == (3, 8), sys.version
        files = sorted(pathlib.Path("miro_edge").rglob("*.py")) + [pathlib.Path("docker/jetson/smoke_test.py")]
        bad = []
        for f in files:
            try:
                compile(f.read_text(encoding="utf-8"), str(f), "exec", dont_inherit=True)
            except SyntaxError as exc:
                bad.append("{}:{}: {}".format(f, exc.lineno, exc.msg))
        print(len(files))
        print("\\n".join(bad))
        sys.exit(1 if bad else 0)
    """)
    out = subprocess.run([PY38, "-c", code], cwd=str(REPO), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert int(out.stdout.split()[0]) > 50


@pytest.mark.skipif(not NOTORCH_PY.exists(),
                    reason="no .venv-compat/py38-notorch (built by `make test` / `make py38-notorch` when "
                           "CPython 3.8 is present)")
def test_package_and_cli_help_work_on_python38_without_torch():
    code = textwrap.dedent("""
        import importlib.util, io, sys
        from contextlib import redirect_stdout
        assert sys.version_info[:2] == (3, 8), sys.version
        assert importlib.util.find_spec("torch") is None, "torch must be absent from this venv"

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError("torch imported on the --help path: " + name)
                return None

        sys.meta_path.insert(0, NoTorch())
        import miro_edge
        from miro_edge.cli import main
        buf = io.StringIO()
        with redirect_stdout(buf):
            try:
                main(["--help"])
            except SystemExit as exc:
                assert exc.code in (0, None), exc.code
        print(miro_edge.__version__)
        print(buf.getvalue())
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONNOUSERSITE="1")
    out = subprocess.run([str(NOTORCH_PY), "-c", code], cwd=str(REPO), capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == __version__
    assert "Usage: miro-edge" in out.stdout
    for name in ("export", "live", "meter", "status", "run"):
        assert f"\n  {name} " in out.stdout, out.stdout
