"""The canary gate: publish a new version only if it is not worse than the current one.

Like with like: when both versions report per-class results (``class_metrics``: the user's label
-> accuracy on held-out samples), only the classes both know are compared, so a model that learnt
new classes is never judged by an average over a different set of classes. The update cycle scores
the current model again on the very samples the candidate was scored on and passes those.
"""
import dataclasses
import math
from typing import Any, Mapping, NamedTuple, Optional

from miro_edge.config import field, require


@dataclasses.dataclass(frozen=True)
class CanaryConfig:
    """Accept a candidate when ``new[metric] >= current[metric] - max_drop``."""

    metric: str = field("val_accuracy", help="manifest metric compared (higher is better)")
    max_drop: float = field(0.01, help="largest allowed drop of the metric vs the current version (absolute)")
    require_metric: bool = field(True, help="reject a candidate that does not report the metric")

    def __post_init__(self) -> None:
        require(bool(self.metric), "metric", "must be a metric name such as val_accuracy")
        require(self.max_drop >= 0, "max_drop", f"must be >= 0, got {self.max_drop}")


class CanaryDecision(NamedTuple):
    accepted: bool
    reason: str
    new_value: Optional[float]
    current_value: Optional[float]


def _value(metrics: Optional[Mapping[str, float]], key: str) -> Optional[float]:
    if not metrics or key not in metrics:
        return None
    try:
        value = float(metrics[key])
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def canary_decision(new_metrics: Optional[Mapping[str, float]], current_metrics: Optional[Mapping[str, float]],
                    config: Optional[CanaryConfig] = None, has_current: bool = True) -> CanaryDecision:
    """Compare a candidate's validation metric with the current version's."""
    cfg = config or CanaryConfig()
    new = _value(new_metrics, cfg.metric)
    cur = _value(current_metrics, cfg.metric) if has_current else None
    if new is None and cfg.require_metric:
        return CanaryDecision(False, f"candidate reports no {cfg.metric!r} metric; validate it before publishing", None, cur)
    if not has_current:
        return CanaryDecision(True, "first version", new, None)
    if cur is None or new is None:
        return CanaryDecision(True, f"no {cfg.metric!r} to compare against", new, cur)
    if new < cur - cfg.max_drop:
        return CanaryDecision(False, f"{cfg.metric} {new:.4f} is worse than current {cur:.4f} by {cur - new:.4f} (> max_drop {cfg.max_drop:.4f})", new, cur)
    return CanaryDecision(True, f"{cfg.metric} {new:.4f} vs current {cur:.4f} (max_drop {cfg.max_drop:.4f})", new, cur)


def _class_values(metrics: Optional[Mapping[str, Any]]) -> Mapping[str, float]:
    out = {}
    for key, value in (metrics or {}).items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isnan(v):
            out[str(key)] = v
    return out


def class_canary_decision(new_classes: Optional[Mapping[str, Any]], current_classes: Optional[Mapping[str, Any]],
                          config: Optional[CanaryConfig] = None) -> Optional[CanaryDecision]:
    """Compare per-class results on the classes both versions know; None if there are none to compare.

    Accept when the mean over shared classes drops by at most ``max_drop`` (the classes only the
    candidate knows are reported, never averaged in)."""
    cfg = config or CanaryConfig()
    new, cur = _class_values(new_classes), _class_values(current_classes)
    shared = sorted(set(new) & set(cur))
    if not shared:
        return None
    new_old = sum(new[c] for c in shared) / len(shared)
    cur_old = sum(cur[c] for c in shared) / len(shared)
    added = sorted(set(new) - set(cur))
    extra = f"; new classes {added} at {sum(new[c] for c in added) / len(added):.4f}" if added else ""
    worst = min(shared, key=lambda c: new[c] - cur[c])
    detail = f"accuracy on the {len(shared)} classes both know {new_old:.4f} vs current {cur_old:.4f} (worst: {worst!r} {new[worst]:.4f} vs {cur[worst]:.4f}){extra}"
    if new_old < cur_old - cfg.max_drop:
        return CanaryDecision(False, f"regression on old classes: {detail} dropped by {cur_old - new_old:.4f} > max_drop {cfg.max_drop:.4f}", new_old, cur_old)
    return CanaryDecision(True, f"{detail} (max_drop {cfg.max_drop:.4f})", new_old, cur_old)
