"""Safe ``torch.load`` on every torch the boards run (1.13 on the TX2, 2.0-2.2 on the Xavier NX).

``torch.load(weights_only=True)`` is the safe path: no pickled code can run. Torch 1.13 (the
newest release for the TX2's CUDA 10.2) has the argument, but its weights-only unpickler cannot
read a Python float (it lacks pickle's BINFLOAT opcode; torch 2.0 added it), and every checkpoint
carries float metrics. Where that is so, the file is read by the standard unpickler with
``find_class`` restricted to torch's own weights-only allowlist: the same callables as
``weights_only=True``, every opcode. The choice comes from probing the installed torch once,
never from its version number.

The fallback calls torch's zip-archive reader (``torch.serialization._load``) directly, because
torch 1.13's ``torch.load`` ignores ``pickle_module`` unless ``weights_only`` is set. It is used
only on a torch whose weights-only path cannot read floats, i.e. 1.13.x, a frozen release.
"""
import functools
import io
import pickle
import warnings
from typing import IO, Any, Union


class WeightsOnlyUnpickler(pickle.Unpickler):
    """The standard unpickler, resolving only globals on torch's weights-only allowlist."""

    def find_class(self, module: str, name: str) -> Any:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = _get_allowed_globals()
        full_name = f"{module}.{name}"
        if full_name in allowed:
            return allowed[full_name]
        raise pickle.UnpicklingError(f"weights-only load refused global {full_name} (not a tensor, storage or "
                                     "plain container)")


class _WeightsOnlyPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load``."""

    __name__ = "miro_edge.utils.torch_compat"
    Unpickler = WeightsOnlyUnpickler

    @staticmethod
    def load(file: IO[bytes], **kwargs: Any) -> Any:
        return WeightsOnlyUnpickler(file, **kwargs).load()


@functools.lru_cache(maxsize=None)
def weights_only_reads_floats() -> bool:
    """Whether this torch's ``weights_only=True`` reads a float (False on torch 1.13)."""
    import torch

    buf = io.BytesIO()
    torch.save({"probe": 0.25}, buf)
    buf.seek(0)
    try:
        return torch.load(buf, map_location="cpu", weights_only=True) == {"probe": 0.25}
    except pickle.UnpicklingError:
        return False


def load_weights_only(f: Union[str, IO[bytes]], map_location: Any = "cpu") -> Any:
    """``torch.load`` that never runs pickled code, on torch 1.13 as on today's releases."""
    import torch

    with warnings.catch_warnings():
        # torch 2.0-2.2 warn "TypedStorage is deprecated" from inside their own loader: nothing a
        # user can act on, and it would break the CLI's one-line errors on the Xavier NX's torch.
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
        if weights_only_reads_floats():
            return torch.load(f, map_location=map_location, weights_only=True)
        return load_with_allowlist(f, map_location)


def load_with_allowlist(f: Union[str, IO[bytes]], map_location: Any = "cpu") -> Any:
    """Read a ``torch.save`` zip archive with :class:`WeightsOnlyUnpickler` (the torch 1.13 path)."""
    from torch import serialization

    with serialization._open_file_like(f, "rb") as opened:
        if not serialization._is_zipfile(opened):
            raise pickle.UnpicklingError("not a torch.save zip archive (legacy or foreign format)")
        with serialization._open_zipfile_reader(opened) as archive:
            return serialization._load(archive, map_location, _WeightsOnlyPickleModule, encoding="utf-8")
