"""vaekit's version (one place; ``vaekit.__version__`` re-exports it)."""

__version__ = "0.7.0"
