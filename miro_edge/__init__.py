"""miro_edge: on-device continual learning for Jetson and Linux edge boxes.

Importing the package loads no optional dependency (TensorRT, pycuda, jtop, ONNX Runtime).
"""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
