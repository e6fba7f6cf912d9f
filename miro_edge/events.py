"""The schema of the results file: one frozen dataclass per event kind.

A run's ``results.jsonl`` holds one JSON object per line, ``{"kind": ..., "time": ..., **fields}``.
Every kind is declared once here, with its fields, their types and (in the names) their units;
writers build the dataclass and hand it to ``Recorder.write``, so a misspelt or missing field is a
``TypeError`` where the event is made, not a silent new key that readers never find::

    recorder.write(ApplyEvent(task_id=3, em_size=200, sb_size=64, evicted=0, refilled=20,
                              sb_dropped=0, reason="profiled"))
    for cycle in read_typed(path, CycleEvent):   # miro_edge.recorder
        print(cycle.cycle, cycle.val_accuracy)

``parse_event`` turns one decoded line back into its dataclass and names the kind and the field
when the line does not fit (another miro_edge version wrote it, most likely). Names mean one
thing each: ``energy_source`` is the meter backend (``ina3221``, ``rapl``, ``model:<profile>``...),
``energy_label`` says whether the joules were ``measured`` or ``estimated``.

Core module: stdlib and ``miro_edge.errors`` only.
"""
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple, Type, TypeVar, Union

from miro_edge.errors import InputError

Label = Union[int, str]  # a class label as the app names it (miro_edge.model.label_map.Label)

E = TypeVar("E", bound="Event")

#: kind -> its dataclass; filled by ``register``. One entry per kind the results file can hold.
EVENT_TYPES: Dict[str, Type["Event"]] = {}

_ENVELOPE = ("kind", "time")  # what the recorder adds around an event's fields


class UnknownEventKindError(InputError):
    """A results line of a kind this miro_edge version does not know (a newer one wrote it)."""


@dataclass(frozen=True)
class Event:
    """Base of every event kind. Subclasses are frozen dataclasses registered with ``register``."""

    KIND: ClassVar[str] = ""
    #: field names an older miro_edge wrote -> the name this version reads them as
    RENAMED: ClassVar[Dict[str, str]] = {}

    def fields(self) -> Dict[str, Any]:
        """The event's fields by name (JSON-ready: what follows ``kind`` and ``time`` in the line)."""
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


# -------------------------------------------------------------------------------- checking
def type_name(hint: Any) -> str:
    """``Optional[float]`` -> ``float or null``: a field's type as the docs and errors show it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "any"
    if origin is Union:
        names = [type_name(a) for a in args if a is not type(None)]
        text = " or ".join(names)
        return text + " or null" if type(None) in args else text
    if origin in (list, List):
        return f"list of {type_name(args[0])}"
    if origin in (dict, Dict):
        return f"object of {type_name(args[1])}"
    return getattr(hint, "__name__", str(hint))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a decoded JSON value fits a field's type (ints count as floats; bools are not ints)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin in (list, List):
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin in (dict, Dict):
        return isinstance(value, dict) and all(isinstance(k, str) and _fits(v, args[1]) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    raise TypeError(f"event field type {hint!r} is not one the results file can hold")


def _supported(hint: Any) -> bool:
    if hint is Any or hint in (int, float, str, bool, type(None)):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    return origin in (Union, list, dict) and all(_supported(a) for a in args) and (origin is not dict or args[0] is str)


_HINTS: Dict[Type[Event], Dict[str, Any]] = {}


def field_types(cls: Type[Event]) -> Dict[str, Any]:
    """Field name -> type hint, in declaration order."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = {name: hints[name] for name in cls.field_names()}
    return _HINTS[cls]


def _required(cls: Type[Event]) -> List[str]:
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def type_problems(cls: Type[Event], values: Mapping[str, Any]) -> List[str]:
    """Each field of ``values`` whose value does not fit ``cls``'s declared type, described."""
    out = []
    for name, hint in field_types(cls).items():
        if name in values and not _fits(values[name], hint):
            shown = repr(values[name])
            out.append("{} should be {}, got {}{}".format(name, type_name(hint), shown[:60],
                                                          "..." if len(shown) > 60 else ""))
    return out


def register(cls: Type[E]) -> Type[E]:
    """Class decorator: add a frozen ``Event`` dataclass to ``EVENT_TYPES`` under its ``KIND``."""
    params = getattr(cls, "__dataclass_params__", None)
    if not (isinstance(cls, type) and issubclass(cls, Event) and "__dataclass_fields__" in vars(cls)
            and params is not None and params.frozen):
        raise TypeError(f"{cls!r}: register() takes a @dataclass(frozen=True) subclass of Event")
    if not cls.KIND or cls.KIND in _ENVELOPE:
        raise TypeError(f"{cls.__name__} needs a KIND other than {_ENVELOPE}")
    if cls.KIND in EVENT_TYPES and EVENT_TYPES[cls.KIND] is not cls:
        raise TypeError(f"event kind {cls.KIND!r} is declared twice: {EVENT_TYPES[cls.KIND].__name__} and {cls.__name__}")
    clash = set(cls.field_names()) & set(_ENVELOPE)
    if clash:
        raise TypeError(f"{cls.__name__}: fields {sorted(clash)} are the recorder's own")
    odd = [name for name, hint in field_types(cls).items() if not _supported(hint)]
    if odd:
        raise TypeError(f"{cls.__name__}: fields {odd} have types JSON cannot hold (int, float, str, bool, "
                        "Optional, List, Dict[str, ...], Any)")
    EVENT_TYPES[cls.KIND] = cls
    return cls


# -------------------------------------------------------------------------------- update cycle
@register
@dataclass(frozen=True)
class IngestEvent(Event):
    """Written by a cycle's drain step when the inbox's samples are committed to the store."""

    KIND: ClassVar[str] = "ingest"

    cycle: int
    count: int
    new_labels: List[Label]
    first_id: int
    val: int  # how many of ``count`` went to the held-out validation split


@register
@dataclass(frozen=True)
class CycleStepEvent(Event):
    """Written after each finished step of an update cycle (drained, trained, exported, published)."""

    KIND: ClassVar[str] = "cycle_step"

    cycle: int
    step: str
    seconds: float
    count: Optional[int] = None
    version: Optional[int] = None  # the registry version, after the publish step
    accepted: Optional[bool] = None  # whether the canary accepted it, after the publish step


@register
@dataclass(frozen=True)
class CycleEvent(Event):
    """Written once per finished update cycle: what it learnt, its accuracy, energy and version."""

    KIND: ClassVar[str] = "cycle"

    cycle: int
    new_samples: int
    new_labels: List[Label]
    labels: List[Label]
    val_accuracy: float
    class_accuracy: Dict[str, float]
    em_size: int
    sb_size: int
    swap_ratio: float
    energy_j: float
    energy_label: str
    profile_energy_j: float
    train_seconds: float
    sample_passes: int
    swaps_done: int
    checkpoint: str
    version: Optional[int]
    published: bool
    publish_reason: str
    resumed_from: Optional[str]
    energy_source: str
    profile: Optional[Dict[str, Any]]


@register
@dataclass(frozen=True)
class StoreLossAcceptedEvent(Event):
    """Written when ``update --accept-store-loss`` accepts a store that lost committed samples."""

    KIND: ClassVar[str] = "store_loss_accepted"

    differences: List[str]


@register
@dataclass(frozen=True)
class TaskEvent(Event):
    """Written by a simulated session after each task: the accuracy on every task seen so far."""

    KIND: ClassVar[str] = "task"

    task_id: int
    classes: List[int]
    accuracies: List[float]
    average_accuracy: float
    em_size: int
    sb_size: int
    train_seconds: float
    sample_passes: int
    swaps_done: int
    checkpoint: str
    energy_j: float
    energy_label: str
    profile_energy_j: float
    version: Optional[int]


# -------------------------------------------------------------------------------- learner
@register
@dataclass(frozen=True)
class ApplyEvent(Event):
    """Written when EM and SB are resized to a new configuration (a choice or a budget switch)."""

    KIND: ClassVar[str] = "apply"

    task_id: int
    em_size: int
    sb_size: int
    evicted: int
    refilled: int
    sb_dropped: int
    reason: str


@register
@dataclass(frozen=True)
class SwapStatsEvent(Event):
    """Written after each fit that ran a swap worker: its counters (``memory.swap.SwapStats``)."""

    KIND: ClassVar[str] = "swap_stats"

    task_id: int
    swaps_done: int
    submitted: int
    dropped_submissions: int
    cancelled: int
    backlog: int
    latency_ewma_s: float
    latency_p95_s: float
    bytes_read: int
    swap_ratio: float
    wait_s: float = 0.0


@register
@dataclass(frozen=True)
class BudgetSwitchEvent(Event):
    """Written when a memory-budget drop stops a fit and training goes on with a smaller candidate."""

    KIND: ClassVar[str] = "budget_switch"

    task_id: int
    em_size: int
    sb_size: int
    memory_bytes: int
    reason: str
    epochs_left: int


@register
@dataclass(frozen=True)
class EmUpdateEvent(Event):
    """Written after a task when EM is rebalanced over every class seen (``memory.em.ResizeReport``)."""

    KIND: ClassVar[str] = "em_update"

    task_id: int
    capacity_before: int
    capacity_after: int
    evicted: int
    refilled: int
    per_class: Dict[str, int]  # class id (as text) -> EM slots


# -------------------------------------------------------------------------------- controller
@register
@dataclass(frozen=True)
class GridEvent(Event):
    """Written when the profiler has built a task's candidate grid, before any trial."""

    KIND: ClassVar[str] = "grid"

    task_id: int
    data_ratio: float
    fixed_passes: float
    em_sizes: List[int]
    sb_sizes: List[int]
    candidates: int
    blacklisted: int
    memory_budget_bytes: int


@register
@dataclass(frozen=True)
class TrialWindowEvent(Event):
    """Written for each metered training window of a profiling trial (a window record of
    ``miro_edge.energy.window_records``: ``miro-edge calibrate`` reads these)."""

    KIND: ClassVar[str] = "trial_window"

    task_id: int
    em_size: int
    sb_size: int
    window: str
    source: str  # the meter backend, like ``energy_source`` elsewhere
    label: str  # measured / estimated, like ``energy_label`` elsewhere
    energy_j: float
    duration_s: float
    mean_w: float
    peak_w: float
    sample_count: int
    total_rail: Optional[str]
    complete: bool
    sample_passes: int
    bytes_read: int
    flops: float
    rails: Dict[str, Dict[str, float]]


@register
@dataclass(frozen=True)
class TrialEvent(Event):
    """Written once per grid point after profiling (blacklisted and skipped ones included)."""

    KIND: ClassVar[str] = "trial"
    # before the schema, ``energy_source`` held measured/estimated/none here
    RENAMED: ClassVar[Dict[str, str]] = {"energy_source": "energy_label"}

    task_id: int
    em_size: int
    sb_size: int
    memory_bytes: int
    accuracy: Optional[float]
    energy_j: Optional[float]
    energy_label: str  # measured / estimated, or none when the trial did not train
    seconds: Optional[float]
    status: str
    reason: str

    @property
    def accuracy_per_j(self) -> Optional[float]:
        if self.status != "ok" or not self.energy_j or self.accuracy is None:
            return None
        return self.accuracy / self.energy_j


@register
@dataclass(frozen=True)
class ChoiceEvent(Event):
    """Written when a task's configuration is chosen (profiler, rule or fallback), with the reason."""

    KIND: ClassVar[str] = "choice"

    task_id: int
    em_size: int
    sb_size: int
    scorer: str
    reason: str
    cutline_accuracy: Optional[float]


@register
@dataclass(frozen=True)
class ProfileEvent(Event):
    """Written at the end of a task's profiling: the trials' own energy and time."""

    KIND: ClassVar[str] = "profile"

    task_id: int
    energy_j: float
    energy_label: Optional[str]
    seconds: float
    candidates: int
    blacklisted: int
    data_ratio: float


@register
@dataclass(frozen=True)
class ProfileEnergyEvent(Event):
    """Written after profiling: everything the profile cost, not only the trials' windows."""

    KIND: ClassVar[str] = "profile_energy"

    task_id: int
    energy_j: float
    energy_label: str
    energy_source: str
    trial_windows_j: float
    seconds: float
    fixed_passes_per_run: float


@register
@dataclass(frozen=True)
class EmRuleEvent(Event):
    """Written when the forgetting rule decides which candidates a task may try."""

    KIND: ClassVar[str] = "em_rule"

    task_id: int
    tau: float
    evidence: int
    predicted: Dict[str, float]  # "EM/SB" -> predicted accuracy
    allowed: List[str]  # "EM/SB" of the candidates allowed
    keep_floor: int
    reason: str


@register
@dataclass(frozen=True)
class ForgettingEvidenceEvent(Event):
    """Written when a task's fit ends: old vs new class accuracy, evidence for the forgetting model."""

    KIND: ClassVar[str] = "forgetting_evidence"

    task_id: int
    em_size: int
    sb_size: int
    per_class: float
    sb_per_class: float
    old_accuracy: float
    new_accuracy: float
    tau: Optional[float]
    model_tau: float


@register
@dataclass(frozen=True)
class IdlePauseEvent(Event):
    """Written when the idle policy held training back (``waited_s`` > 0)."""

    KIND: ClassVar[str] = "idle_pause"

    waited_s: float
    allowed: bool
    reason: str


@register
@dataclass(frozen=True)
class SwapRatioEvent(Event):
    """Written at each change of the swap ratio while a task trains (the congestion rule)."""

    KIND: ClassVar[str] = "swap_ratio"

    task_id: int
    old: float
    new: float
    reason: str


@register
@dataclass(frozen=True)
class BudgetInfeasibleEvent(Event):
    """Written when no candidate fits a dropped memory budget (training goes on as it is)."""

    KIND: ClassVar[str] = "budget_infeasible"

    task_id: int
    budget_bytes: int
    reason: str


_OTHER_VERSION = ("; was the file written by another miro_edge version? Read it with that version, "
                  "or re-run to write it again")


def parse_event(line: Mapping[str, Any]) -> Event:
    """The dataclass of one decoded results line (``kind``, ``time`` and the fields).

    Raises ``UnknownEventKindError`` for a kind this version does not declare and ``InputError``
    naming the kind and the field for a missing, unknown or mistyped field. Fields an older
    version wrote under another name (``RENAMED``) are read under the current one."""
    if not isinstance(line, Mapping) or not isinstance(line.get("kind"), str):
        raise InputError(f"a results line needs a string 'kind', got {str(line)[:80]!r}")
    kind = line["kind"]
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise UnknownEventKindError(f"unknown event kind {kind!r} (this version knows {', '.join(sorted(EVENT_TYPES))})"
                                    + _OTHER_VERSION)
    values = {k: v for k, v in line.items() if k not in _ENVELOPE}
    for old, new in cls.RENAMED.items():
        if old in values and new not in values:
            values[new] = values.pop(old)
    names = cls.field_names()
    unknown = sorted(k for k in values if k not in names)
    if unknown:
        raise InputError(f"{kind} event has unknown field(s) {', '.join(unknown)}" + _OTHER_VERSION)
    missing = [n for n in _required(cls) if n not in values]
    if missing:
        raise InputError(f"{kind} event is missing field(s) {', '.join(missing)}" + _OTHER_VERSION)
    problems = type_problems(cls, values)
    if problems:
        raise InputError(f"{kind} event: {'; '.join(problems)}" + _OTHER_VERSION)
    hints = field_types(cls)
    for name, value in values.items():  # a writer that passed 2 for a float field wrote 2, not 2.0
        if hints[name] in (float, Optional[float]) and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
    return cls(**values)


# -------------------------------------------------------------------------------- docs
def schema_table() -> str:
    """A markdown table of every kind, its fields with types and when it is written (docs/events.md)."""
    rows = ["| kind | written | fields |", "|---|---|---|"]
    for kind in sorted(EVENT_TYPES):
        cls = EVENT_TYPES[kind]
        doc = " ".join((cls.__doc__ or "").split())
        defaults = {f.name for f in dataclasses.fields(cls) if f.name not in _required(cls)}
        fields = ", ".join("`{}` ({}{})".format(n, type_name(h), ", optional" if n in defaults else "")
                           for n, h in field_types(cls).items())
        rows.append(f"| `{kind}` | {doc} | {fields} |")
    return "\n".join(rows) + "\n"


def kinds_of(*classes: Type[Event]) -> Dict[str, Type[Event]]:
    """kind -> class for ``classes`` (every registered kind when none are given)."""
    for cls in classes:
        if EVENT_TYPES.get(cls.KIND) is not cls:
            raise TypeError(f"{cls!r} is not a registered event type")
    return {c.KIND: c for c in classes} if classes else dict(EVENT_TYPES)


__all__: List[str] = [
    "EVENT_TYPES", "Event", "UnknownEventKindError", "parse_event", "register", "schema_table", "type_name",
    "type_problems",
] + sorted(c.__name__ for c in EVENT_TYPES.values())
