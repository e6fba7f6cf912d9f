"""Data streams: labelled array sources (adapters registered by name) and class-incremental tasks."""
from miro_edge.data.sources import DATASETS, ArraySource, encode_labels, load_source
from miro_edge.data.stream import ClassIncrementalStream, StreamConfig, Task

__all__ = ["ArraySource", "DATASETS", "encode_labels", "load_source", "ClassIncrementalStream",
           "StreamConfig", "Task"]
