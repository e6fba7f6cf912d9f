"""Every module imports with the optional dependencies absent (they load lazily)."""
import subprocess
import sys
import textwrap

OPTIONAL = ["tensorrt", "pycuda", "cuda", "jtop", "pynvml", "onnxruntime", "onnx", "onnxscript", "lmdb",
            "matplotlib", "cv2", "sklearn", "aeon", "sktime"]


def test_all_modules_import_without_optional_dependencies():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        BLOCKED = {blocked!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked optional dependency " + name)
                return None

        sys.meta_path.insert(0, Block())
        import miro_edge
        names = [m.name for m in pkgutil.walk_packages(miro_edge.__path__, "miro_edge.")]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        print(len(names))
    """).format(blocked=OPTIONAL)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 10


def test_missing_optional_dependency_names_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["tensorrt"] = None
        from miro_edge.utils.optional import require
        from miro_edge.errors import MissingDependencyError
        try:
            require("tensorrt", "trt", "building engines")
        except MissingDependencyError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "miro-edge[trt]" in out.stdout and "building engines" in out.stdout
