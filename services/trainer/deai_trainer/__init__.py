"""DeAI OS training worker: DiLoCoX low-communication training on PyTorch."""

__version__ = "0.1.0"
