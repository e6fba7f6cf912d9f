"""The device right now: memory, I/O pressure, external power, the live path's load, and giving
memory back to the OS. Read by the controller's idle policy and budget, set by the live loop.
"""
from miro_edge.device.load import LoadFile, LoadGauge
from miro_edge.device.memory import release_memory
from miro_edge.device.resources import MemoryInfo, ResourceMonitor, ResourceSnapshot

__all__ = ["LoadFile", "LoadGauge", "MemoryInfo", "ResourceMonitor", "ResourceSnapshot", "release_memory"]
