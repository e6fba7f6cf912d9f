"""The on-device loop: one directory holding a device's whole learning state."""
