"""The user's labels <-> the model's class ids: append-only, so a label keeps its class id forever.

It travels with every checkpoint and registry version, so the live path predicts in the user's
labels. Labels are ints or non-empty strings (``3`` and ``"3"`` are different labels).
"""
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from miro_edge.errors import InputError
from miro_edge.utils.atomic import atomic_write_json

Label = Union[int, str]
FORMAT_VERSION = 1


def check_label(label: Any, where: str = "") -> Label:
    """A label as stored (int or non-empty str); anything else is an InputError naming ``where``."""
    at = f" ({where})" if where else ""
    if isinstance(label, bool):
        raise InputError(f"label {label!r}{at} is a boolean; use an int or a string")
    if hasattr(label, "item") and not isinstance(label, (str, bytes)):  # numpy scalars
        label = label.item()
    if isinstance(label, int):
        return int(label)
    if isinstance(label, str):
        if not label.strip():
            raise InputError(f"empty label{at}; every sample needs a label")
        return label
    raise InputError(f"label {label!r}{at} must be an int or a string, got {type(label).__name__}")


class LabelMap:
    """Class id ``i`` is ``labels[i]``; ``extend`` only appends."""

    def __init__(self, labels: Iterable[Label] = ()) -> None:
        self._labels: List[Label] = []
        self._ids: Dict[Tuple[str, Label], int] = {}
        self.extend(labels)

    @staticmethod
    def _key(label: Label) -> Tuple[str, Label]:
        return (type(label).__name__, label)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, (int, str)) and self._key(label) in self._ids

    @property
    def labels(self) -> List[Label]:
        return list(self._labels)

    def class_id(self, label: Label) -> int:
        try:
            return self._ids[self._key(check_label(label))]
        except KeyError:
            raise InputError(f"label {label!r} is unknown to this model (known: {self._labels})") from None

    def label(self, class_id: int) -> Label:
        if not 0 <= int(class_id) < len(self._labels):
            raise InputError(f"class id {class_id} is outside the label map of {len(self._labels)} labels")
        return self._labels[int(class_id)]

    def new_labels(self, labels: Iterable[Label]) -> List[Label]:
        """Labels of ``labels`` not in the map yet, in first-seen order."""
        out: List[Label] = []
        seen: set = set()
        for label in labels:
            key = self._key(check_label(label))
            if key not in self._ids and key not in seen:
                seen.add(key)
                out.append(key[1])
        return out

    def extend(self, labels: Iterable[Label]) -> List[int]:
        """Append the new ones of ``labels``; return the class ids of all of them."""
        ids = []
        for label in labels:
            label = check_label(label)
            key = self._key(label)
            if key not in self._ids:
                self._ids[key] = len(self._labels)
                self._labels.append(label)
            ids.append(self._ids[key])
        return ids

    def encode(self, labels: Sequence[Label]) -> List[int]:
        """Class ids of known labels (an unknown one is an InputError)."""
        return [self.class_id(label) for label in labels]

    def extends(self, other: Optional["LabelMap"]) -> bool:
        """True if this map is ``other`` with zero or more labels appended (compatible with it)."""
        return other is None or self._labels[: len(other)] == other.labels

    # persistence ----------------------------------------------------------------------------
    def to_json(self) -> List[Label]:
        return list(self._labels)

    @classmethod
    def from_json(cls, data: Any, where: str = "label map") -> "LabelMap":
        if not isinstance(data, list):
            raise InputError(f"{where} must be a list of labels, got {type(data).__name__}")
        labels = [check_label(v, f"{where} entry {i}") for i, v in enumerate(data)]
        made = cls(labels)
        if len(made) != len(labels):
            raise InputError(f"{where} lists a label twice: {labels}")
        return made

    def save(self, path: Union[str, Path]) -> None:
        atomic_write_json(path, {"format_version": FORMAT_VERSION, "labels": self.to_json()}, perms=0o644)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "LabelMap":
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path} is unreadable ({exc}); restore it from the latest checkpoint") from None
        return cls.from_json(data.get("labels") if isinstance(data, dict) else data, str(path))

    def __repr__(self) -> str:
        return f"LabelMap({self._labels})"
