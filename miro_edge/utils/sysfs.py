"""Small helpers to read sysfs/procfs files under an injectable root (tests use a fake tree)."""
import errno
import os
from typing import Optional

#: errno values meaning "the device is gone", as opposed to a transient read error.
GONE_ERRNOS = (errno.ENOENT, errno.ENODEV, errno.ENXIO)


def under(root: str, path: str) -> str:
    """``path`` (absolute, e.g. ``/sys/class``) inside ``root`` (``/`` on a real system)."""
    return os.path.join(root, path.lstrip("/"))


def read_text(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip().strip("\x00")


def read_optional(path: str) -> Optional[str]:
    try:
        return read_text(path)
    except OSError:
        return None


def read_number(path: str) -> float:
    """First whitespace-separated token of a sysfs file as a number (``"5000"``, ``"32760 ma"``)."""
    text = read_text(path)
    if not text:
        raise ValueError(f"{path} is empty")
    return float(text.split()[0])


def is_gone(exc: OSError) -> bool:
    return isinstance(exc, FileNotFoundError) or exc.errno in GONE_ERRNOS
