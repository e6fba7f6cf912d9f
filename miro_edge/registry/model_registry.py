"""A versioned, crash-safe model registry on the local file system.

Layout::

    <root>/
      CURRENT              "v000007\n" -- replaced atomically (os.replace), the live pointer
      versions/v000007/    manifest.json + artifacts (model.onnx, checkpoint.pt, ...)
      rejected/v000008/    candidates the canary gate refused (manifest says why)
      .staging/            versions being written (never read)
      .trash/              versions being deleted (never read)
      .lock                flock: one writer at a time (publish, rollback, prune)
      HISTORY              versions ever made current, one per line (appended after CURRENT moves)

Publishing copies the artifacts into ``.staging``, fsyncs every file and the directory, renames
the directory into ``versions/`` (or ``rejected/``), fsyncs that, and only then moves ``CURRENT``.
A crash (power cut, ``kill -9``) at any instant leaves ``CURRENT`` naming a whole version. A
version renamed into ``versions/`` whose ``CURRENT`` move never happened is listed as "staged",
not "accepted": only versions in ``HISTORY`` (or current) were ever live.
Every artifact is checked against its sha256 before it is handed out.
"""
import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

from miro_edge.errors import IncompatibleModelError, IntegrityError, RegistryError, VersionNotFoundError
from miro_edge.registry.canary import CanaryConfig, CanaryDecision, canary_decision, class_canary_decision
from miro_edge.utils.atomic import atomic_write, atomic_write_bytes, fsync_dir, remove_stale_temps
from miro_edge.utils.hashing import sha256_file

logger = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POINTER = "CURRENT"
HISTORY = "HISTORY"
_NAME_RE = re.compile(r"^v(\d{6,})$")
_ARTIFACT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

PathLike = Union[str, Path]


def version_name(version: int) -> str:
    return f"v{version:06d}"


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What one version is: where it came from, how good it was, and the hash of each file."""

    version: int
    parent: Optional[int]
    status: str                       # "accepted" or "rejected"
    reason: str
    task_id: Optional[int]
    metrics: Dict[str, float]
    config: Dict[str, Any]
    artifacts: Dict[str, Dict[str, Any]]   # name -> {"sha256": str, "bytes": int}
    created_unix: float
    format_version: int = MANIFEST_FORMAT_VERSION
    label_map: Optional[List[Any]] = None          # class id -> the user's label (None: class ids)
    input_shape: Optional[List[int]] = None        # per-sample input shape the model takes
    class_metrics: Dict[str, float] = dataclasses.field(default_factory=dict)  # the user's label -> accuracy

    @property
    def name(self) -> str:
        return version_name(self.version)

    def as_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        data["created_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_unix))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Manifest":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class PublishResult(NamedTuple):
    version: int
    accepted: bool
    reason: str
    manifest: Manifest
    path: Path


class ModelRegistry:
    """A directory of model versions with an atomic ``CURRENT`` pointer, rollback and retention."""

    def __init__(self, root: PathLike, keep_last: int = 5, canary: Optional[CanaryConfig] = None) -> None:
        if keep_last < 1:
            raise RegistryError(f"keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = keep_last
        self.canary = canary or CanaryConfig()
        for sub in ("versions", "rejected", ".staging", ".trash"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ reading
    @property
    def pointer_path(self) -> Path:
        return self.root / POINTER

    def pointer_token(self) -> Optional[Tuple[int, int, int]]:
        """A cheap fingerprint of ``CURRENT`` (inode, mtime, size): changes on every publish/rollback."""
        try:
            st = os.stat(str(self.pointer_path))
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def current_version(self) -> Optional[int]:
        """The version ``CURRENT`` names, or None before the first publish."""
        try:
            text = self.pointer_path.read_text().strip()
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        match = _NAME_RE.match(text)
        if not match:
            raise RegistryError(f"{self.pointer_path} holds {text!r}, not a version name; restore it with `miro-edge rollback "
                                "--to N`")
        return int(match.group(1))

    def version_dir(self, version: int) -> Path:
        for sub in ("versions", "rejected"):
            path = self.root / sub / version_name(version)
            if path.is_dir():
                return path
        raise VersionNotFoundError(f"version {version} is not in registry {self.root}; `miro-edge versions` lists them")

    def manifest(self, version: int) -> Manifest:
        path = self.version_dir(version) / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"manifest {path} is unreadable ({exc}); the version is damaged") from None
        manifest = Manifest.from_dict(data)
        if manifest.format_version != MANIFEST_FORMAT_VERSION:
            raise RegistryError(f"manifest {path} has format_version {manifest.format_version}; this miro_edge reads {MANIFEST_FORMAT_VERSION}")
        return manifest

    def made_current(self) -> Optional[List[int]]:
        """Versions ever made current, in order (None: a registry written before this was recorded)."""
        try:
            text = (self.root / HISTORY).read_text()
        except FileNotFoundError:
            return None
        return [int(m.group(1)) for m in (_NAME_RE.match(line.strip()) for line in text.splitlines()) if m]

    def _staged(self, manifest: Manifest, current: Optional[int], history: Optional[List[int]]) -> bool:
        """Accepted by the canary and moved into ``versions/``, but never made current (a publish cut short)."""
        if manifest.status != "accepted" or manifest.version == current:
            return False
        if history is None:  # an older registry: everything up to the current version was live once
            return current is None or manifest.version > current
        return manifest.version not in history

    def versions(self, include_rejected: bool = False) -> List[Manifest]:
        """Manifests sorted by version (accepted ones; rejected too when asked). An accepted version
        that was never made current (a publish cut short) comes back with status "staged"."""
        current, history = self.current_version(), self.made_current()
        out = []
        subs = ("versions", "rejected") if include_rejected else ("versions",)
        for sub in subs:
            for entry in sorted((self.root / sub).iterdir()):
                match = _NAME_RE.match(entry.name)
                if match and entry.is_dir():
                    try:
                        manifest = self.manifest(int(match.group(1)))
                    except RegistryError as exc:
                        logger.warning("skipping %s: %s", entry, exc)
                        continue
                    if self._staged(manifest, current, history):
                        manifest = dataclasses.replace(manifest, status="staged")
                    out.append(manifest)
        return sorted(out, key=lambda m: m.version)

    def verify(self, version: int) -> Manifest:
        """Check every artifact of ``version`` against its manifest sha256; raise IntegrityError if not."""
        manifest = self.manifest(version)
        base = self.version_dir(version)
        for name, info in manifest.artifacts.items():
            path = base / name
            if not path.is_file():
                raise IntegrityError(f"version {version} artifact {path} is missing; roll back to another version")
            digest = sha256_file(path)
            if digest != info["sha256"]:
                raise IntegrityError("version {} artifact {} has sha256 {} but the manifest records {}; refusing "
                                     "to load it (the file was modified or corrupted): roll back or republish"
                                     .format(version, path, digest[:16], str(info["sha256"])[:16]))
        return manifest

    def artifacts(self, version: int, verify: bool = True) -> Dict[str, Path]:
        """Paths of ``version``'s artifacts, verified against their sha256 first."""
        manifest = self.verify(version) if verify else self.manifest(version)
        base = self.version_dir(version)
        return {name: base / name for name in manifest.artifacts}

    def current(self, verify: bool = True) -> Optional[Manifest]:
        """Manifest of the current version (verified), or None before the first publish."""
        version = self.current_version()
        if version is None:
            return None
        return self.verify(version) if verify else self.manifest(version)

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _lock(self) -> Iterator[None]:
        import fcntl

        fd = os.open(str(self.root / ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock; so does process death

    def _clean_scratch(self) -> None:
        """Remove what an interrupted writer left (under the lock: no other writer is running)."""
        for sub in (".staging", ".trash"):
            for entry in (self.root / sub).iterdir():
                shutil.rmtree(str(entry), ignore_errors=True)
        remove_stale_temps(self.root, POINTER)
        self._record_current()

    def _next_version(self) -> int:
        numbers = [0]
        for sub in ("versions", "rejected"):
            for entry in (self.root / sub).iterdir():
                match = _NAME_RE.match(entry.name)
                if match:
                    numbers.append(int(match.group(1)))
        return max(numbers) + 1

    def publish(self, artifacts: Mapping[str, PathLike], metrics: Optional[Mapping[str, float]] = None,
                config: Optional[Mapping[str, Any]] = None, task_id: Optional[int] = None,
                force: bool = False, canary: Optional[CanaryConfig] = None,
                label_map: Optional[List[Any]] = None, input_shape: Optional[List[int]] = None,
                class_metrics: Optional[Mapping[str, float]] = None,
                current_class_metrics: Optional[Mapping[str, float]] = None) -> PublishResult:
        """Add a version holding copies of ``artifacts`` ({name: path}); make it current if the canary passes.

        A candidate the canary gate refuses is kept under ``rejected/`` with the reason and
        ``CURRENT`` is not touched. ``force=True`` skips the gate (a manual override) and the
        compatibility check: without it, a model whose input shape differs from the current one's,
        or whose label map does not extend the current one's, raises IncompatibleModelError (the
        live loop could not serve it in place of the current one). ``current_class_metrics`` are
        the current version's per-class results on the candidate's own held-out samples (else
        those recorded in its manifest).
        """
        for name, src in artifacts.items():
            if not _ARTIFACT_RE.match(name):
                raise RegistryError(f"artifact name {name!r} is not a plain file name")
            if not Path(src).is_file():
                raise RegistryError(f"artifact {name} ({src}) does not exist")
        if not artifacts:
            raise RegistryError("nothing to publish: pass at least one artifact")
        metrics_f = {str(k): float(v) for k, v in (metrics or {}).items()}
        with self._lock():
            self._clean_scratch()
            version = self._next_version()
            parent = self.current_version()
            current = self.manifest(parent) if parent is not None else None
            if current is not None and not force:
                _check_compatible(current, label_map, input_shape)
            cfg = canary or self.canary
            classes = {str(k): float(v) for k, v in (class_metrics or {}).items()}
            decision: Optional[CanaryDecision] = None
            if current is not None:
                decision = class_canary_decision(classes, current_class_metrics if current_class_metrics is not None
                                                 else current.class_metrics, cfg)
            if decision is None:
                decision = canary_decision(metrics_f, current.metrics if current is not None else None, cfg,
                                           has_current=current is not None)
            if force and not decision.accepted:
                decision = CanaryDecision(True, "forced past the canary gate: " + decision.reason,
                                          decision.new_value, decision.current_value)
            staging = Path(tempfile.mkdtemp(prefix=version_name(version) + "-", dir=str(self.root / ".staging")))
            recorded = {}
            for name, src in sorted(artifacts.items()):
                recorded[name] = _copy_fsync(Path(src), staging / name)
            manifest = Manifest(version=version, parent=parent,
                                status="accepted" if decision.accepted else "rejected", reason=decision.reason,
                                task_id=task_id, metrics=metrics_f, config=dict(config or {}),
                                artifacts=recorded, created_unix=time.time(),
                                label_map=None if label_map is None else list(label_map),
                                input_shape=None if input_shape is None else [int(v) for v in input_shape],
                                class_metrics=classes)
            text = json.dumps(manifest.as_dict(), indent=2, sort_keys=True, default=str)
            atomic_write(staging / MANIFEST, lambda f: f.write(text), "w", 0o644)
            fsync_dir(staging)
            sub = "versions" if decision.accepted else "rejected"
            final = self.root / sub / version_name(version)
            os.rename(str(staging), str(final))
            fsync_dir(self.root / sub)
            if decision.accepted:
                self._set_pointer(version)
                logger.info("published %s (parent %s): %s", manifest.name, parent, decision.reason)
                self._prune_locked()
            else:
                logger.warning("rejected candidate %s: %s", manifest.name, decision.reason)
            return PublishResult(version, decision.accepted, decision.reason, manifest, final)

    def _set_pointer(self, version: int) -> None:
        atomic_write_bytes(self.pointer_path, (version_name(version) + "\n").encode("ascii"), perms=0o644)
        self._record_current()

    def _record_current(self) -> None:
        """Append the current version to ``HISTORY`` if it is not there (after a kill between the
        pointer move and this append, the next writer does it). Writers only, under the lock."""
        current = self.current_version()
        history = self.made_current()
        if history is None:  # start the record: every accepted version up to the current one was live
            names = sorted(int(m.group(1)) for m in (_NAME_RE.match(e.name) for e in (self.root / "versions").iterdir())
                           if m)
            history = [] if current is None else [v for v in names if v < current]
            lines = "".join(version_name(v) + "\n" for v in history)
            atomic_write_bytes(self.root / HISTORY, lines.encode("ascii"), perms=0o644)
        if current is None or (history and history[-1] == current):
            return
        with open(str(self.root / HISTORY), "a") as log:
            log.write(version_name(current) + "\n")
            log.flush()
            os.fsync(log.fileno())

    def rollback(self, to: Optional[int] = None) -> Manifest:
        """Point ``CURRENT`` at version ``to`` (default: the current version's parent), verified first."""
        with self._lock():
            if to is None:
                cur = self.current_version()
                if cur is None:
                    raise RegistryError("nothing to roll back: the registry has no current version")
                to = self.manifest(cur).parent
                if to is None:
                    raise RegistryError(f"version {cur} has no parent to roll back to; pass --to N")
            target = self.root / "versions" / version_name(to)
            if not target.is_dir():
                raise VersionNotFoundError(f"version {to} is not an accepted version in {self.root}; `miro-edge versions` "
                                           "lists them")
            self._clean_scratch()
            manifest = self.verify(to)
            self._set_pointer(to)
            logger.info("rolled back to %s", manifest.name)
            return manifest

    def prune(self) -> List[int]:
        """Delete all but the last ``keep_last`` versions (never current or its parent)."""
        with self._lock():
            self._clean_scratch()
            return self._prune_locked()

    def _prune_locked(self) -> List[int]:
        cur = self.current_version()
        protected = set()
        if cur is not None:
            protected.add(cur)
            parent = self.manifest(cur).parent
            if parent is not None:
                protected.add(parent)
        removed = []
        for sub in ("versions", "rejected"):
            numbers = sorted(int(m.group(1)) for m in (_NAME_RE.match(e.name) for e in (self.root / sub).iterdir())
                             if m)
            keep = set(numbers[-self.keep_last:]) | protected
            for number in numbers:
                if number in keep:
                    continue
                src = self.root / sub / version_name(number)
                trash = Path(tempfile.mkdtemp(prefix=version_name(number) + "-", dir=str(self.root / ".trash")))
                os.rename(str(src), str(trash / "v"))  # leaves the listing atomically, then is deleted
                fsync_dir(self.root / sub)
                shutil.rmtree(str(trash), ignore_errors=True)
                removed.append(number)
        if removed:
            logger.info("pruned versions %s", removed)
        return removed


def _check_compatible(current: Manifest, label_map: Optional[List[Any]], input_shape: Optional[List[int]]) -> None:
    """The live loop swaps a candidate in place of ``current``: same input, labels only appended."""
    if input_shape is not None and current.input_shape is not None and list(input_shape) != current.input_shape:
        raise IncompatibleModelError(
            f"the candidate takes inputs of shape {list(input_shape)} but current version {current.name} takes {current.input_shape}; the live loop could not "
            "swap to it. Publish with --force to replace the model anyway")
    if label_map is not None and current.label_map is not None and \
            list(label_map[:len(current.label_map)]) != list(current.label_map):
        raise IncompatibleModelError(
            f"the candidate's labels {list(label_map)} do not extend current version {current.name}'s labels {current.label_map} (a label would change its "
            "class id); publish with --force to replace the label map anyway")


def _copy_fsync(src: Path, dst: Path) -> Dict[str, Any]:
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(str(src), "rb") as fin, open(str(dst), "wb") as fout:
        while True:
            block = fin.read(1 << 20)
            if not block:
                break
            digest.update(block)
            fout.write(block)
            size += len(block)
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(str(dst), 0o644)
    return {"sha256": digest.hexdigest(), "bytes": size}


def open_registry(root: PathLike, keep_last: int = 5, canary: Optional[CanaryConfig] = None) -> ModelRegistry:
    """Open (creating if needed) the registry at ``root``."""
    return ModelRegistry(root, keep_last=keep_last, canary=canary)
