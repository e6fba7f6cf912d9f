"""Built-in dataset adapters. Each reads data an installed package ships (no download) or a
user file; ``procedural`` makes data from a seed. These are the only places where dataset names
appear."""
from pathlib import Path
from typing import Any, Optional

import numpy as np

import miro_edge.data.procedural  # noqa: F401  (registers the generated workloads: glyphs, chirps)
from miro_edge.data.sources import DATASETS, ArraySource, encode_labels, windowed_source
from miro_edge.errors import InputError
from miro_edge.utils.optional import require


@DATASETS.register("digits")
def digits() -> ArraySource:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), scaled to [0, 1]."""
    datasets = require("sklearn.datasets", "data", "the digits data set")
    bunch = datasets.load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    return ArraySource("digits", x, bunch.target.astype(np.int64),
                       tuple(str(n) for n in bunch.target_names), None, {"origin": "sklearn.datasets.load_digits"})


def _load_basic_motions() -> Any:
    try:
        loader = require("aeon.datasets", "data", "the BasicMotions activity data")
        return loader.load_basic_motions(), "aeon"
    except ImportError:
        loader = require("sktime.datasets", "data", "the BasicMotions activity data")
        x, y = loader.load_basic_motions(return_type="numpy3D")
        return (x, y), "sktime"


@DATASETS.register("basic_motions")
def basic_motions(window_length: Optional[int] = 50, window_stride: Optional[int] = 10) -> ArraySource:
    """BasicMotions (accelerometer + gyroscope, 6 x 100 samples, 4 activities, 80 recordings) as
    bundled with aeon (or sktime). Recordings are cut into windows (``window_length=None`` keeps
    whole recordings); windows of one recording share a group, so they never straddle train/test."""
    (series, labels), origin = _load_basic_motions()
    ids, names = encode_labels(labels)
    return windowed_source("basic_motions", series, ids, names, window_length, window_stride,
                           {"origin": origin + ".datasets.load_basic_motions"})


@DATASETS.register("npz")
def npz(path: str, x_key: str = "x", y_key: str = "y") -> ArraySource:
    """A user ``.npz`` file with a sample array ``x`` (N, ...) and a label array ``y`` (N,)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"npz data file {file} does not exist")
    try:
        with np.load(str(file), allow_pickle=False) as data:
            missing = [k for k in (x_key, y_key) if k not in data.files]
            if missing:
                raise InputError(f"{file} lacks array(s) {missing}; it holds {data.files}")
            x, y = data[x_key], data[y_key]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {file} as .npz: {exc}") from None
    if np.issubdtype(y.dtype, np.integer):
        ids, names = y.astype(np.int64), tuple(str(v) for v in np.unique(y))
    else:
        ids, names = encode_labels(y)
    return ArraySource(file.stem, np.asarray(x, dtype=np.float32), ids, names, None, {"origin": str(file)})


def from_torch_dataset(dataset: Any, name: str = "torch_dataset", limit: Optional[int] = None) -> ArraySource:
    """Materialise a map-style ``torch.utils.data.Dataset`` of ``(x, label)`` pairs."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    xs, ys = [], []
    for i in range(count):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InputError(f"dataset item {i} must be an (x, label) pair, got {type(item)!r}")
        x, y = item[0], item[1]
        xs.append(np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32))
        ys.append(int(y.item() if hasattr(y, "item") else y))
    if not xs:
        raise InputError(f"dataset {name} is empty")
    shapes = {a.shape for a in xs}
    if len(shapes) != 1:
        raise InputError(f"dataset {name}: samples have differing shapes {sorted(shapes)[:3]}")
    return ArraySource(name, np.stack(xs), np.asarray(ys, dtype=np.int64))


from miro_edge.data import audio as _audio  # noqa: E402,F401  (registers the ``audio`` adapter)
