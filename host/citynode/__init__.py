"""citynode: host tools for MicroPython city sensor nodes."""

__version__ = "0.1.0"
