"""Labelled samples from files, for ``miro-edge ingest --from PATH``: an ``.npz`` (x, y), a CSV of
IMU windows (a ``label`` column and the window's values, channel by channel), or a folder of
images with one sub-folder per label (Pillow, the ``images`` extra). Errors name the row or file."""
import csv
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from miro_edge.errors import InputError
from miro_edge.utils.optional import require

Chunk = Tuple[np.ndarray, List[Any]]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm")


def count_samples(path: Path) -> Optional[int]:
    """How many samples ``read_samples`` will yield (for a progress bar), when cheap to know."""
    if path.is_dir():
        return sum(1 for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if path.suffix == ".csv":
        with open(str(path)) as handle:
            return max(0, sum(1 for _ in handle) - 1)
    return None


def read_samples(path: Path, input_shape: Optional[Sequence[int]], chunk: int = 256) -> Iterator[Chunk]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        return _images(path, input_shape, chunk)
    if path.suffix == ".npz":
        return _npz(path)
    if path.suffix == ".csv":
        return _csv(path, input_shape, chunk)
    raise InputError(f"cannot ingest {path}: give an .npz (x, y), a .csv of windows, or a folder of images per label"
                     )


def _npz(path: Path) -> Iterator[Chunk]:
    try:
        with np.load(str(path), allow_pickle=False) as data:
            x, y = np.asarray(data["x"]), np.asarray(data["y"])
    except KeyError as exc:
        raise InputError(f"{path} lacks array {exc}; it needs x (n, *shape) and y (n,) labels") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable .npz ({exc})") from None
    if len(x) != len(y):
        raise InputError(f"{path} has {len(x)} samples in x but {len(y)} labels in y")
    yield x, [v.item() if hasattr(v, "item") else v for v in y]


def _csv(path: Path, input_shape: Optional[Sequence[int]], chunk: int) -> Iterator[Chunk]:
    if input_shape is None:
        raise InputError("a CSV of windows needs the workspace's input_shape (e.g. [6, 100]) in workspace.yaml")
    size = int(np.prod(input_shape))
    with open(str(path), newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or "label" not in header:
            raise InputError(f"{path}: the first row must be a header with a 'label' column")
        at = header.index("label")
        xs: List[np.ndarray] = []
        labels: List[Any] = []
        for row_no, row in enumerate(reader, 2):
            if not row:
                continue
            values = row[:at] + row[at + 1:]
            if len(values) != size:
                raise InputError(f"{path} row {row_no}: {len(values)} values, expected {size} for input shape {list(input_shape)}")
            try:
                xs.append(np.asarray(values, dtype=np.float32).reshape(tuple(input_shape)))
            except ValueError:
                raise InputError(f"{path} row {row_no}: a value is not a number") from None
            label = row[at].strip()
            labels.append(int(label) if label.lstrip("-").isdigit() else label)
            if len(xs) == chunk:
                yield np.stack(xs), labels
                xs, labels = [], []
        if xs:
            yield np.stack(xs), labels


def _images(path: Path, input_shape: Optional[Sequence[int]], chunk: int) -> Iterator[Chunk]:
    image = require("PIL.Image", "images", "ingesting a folder of images")
    if input_shape is None or len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise InputError("a folder of images needs input_shape [1 or 3, height, width] in workspace.yaml")
    channels, height, width = (int(v) for v in input_shape)
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError("{} holds no images ({}) in per-label sub-folders".format(path, ", ".join(IMAGE_SUFFIXES)))
    xs: List[np.ndarray] = []
    labels: List[Any] = []
    for f in files:
        if f.parent == path:
            raise InputError(f"{f} is not in a label sub-folder of {path}")
        try:
            with image.open(str(f)) as img:
                img = img.convert("L" if channels == 1 else "RGB").resize((width, height))
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except Exception as exc:
            raise InputError(f"{f} is not a readable image ({exc})") from None
        xs.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
        labels.append(f.parent.relative_to(path).parts[0])
        if len(xs) == chunk:
            yield np.stack(xs), labels
            xs, labels = [], []
    if xs:
        yield np.stack(xs), labels
