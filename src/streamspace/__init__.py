"""StreamSpace: stream containerised desktop apps to the browser."""

__version__ = "0.1.0"
