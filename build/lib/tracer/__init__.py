"""syspath: a live explorer of Linux kernel paths."""
__version__ = "0.1.0"
