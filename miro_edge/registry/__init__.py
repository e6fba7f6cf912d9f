"""The model registry: the train-to-live hand-off. Versioned, atomic directories of artifacts with
a manifest, a current pointer, and the canary gate that decides whether a candidate may become
current. Training publishes here; the live loop only reads.
"""
from miro_edge.registry.canary import CanaryConfig, CanaryDecision, canary_decision
from miro_edge.registry.model_registry import (
           Manifest,
           ModelRegistry,
           PublishResult,
           open_registry,
           version_name,
)

__all__ = ["CanaryConfig", "CanaryDecision", "Manifest", "ModelRegistry", "PublishResult", "canary_decision",
           "open_registry", "version_name"]
