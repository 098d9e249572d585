"""The execute stage: attempts against the providers behind chosen model names."""

from hybridgate.execute.executor import Executor

__all__ = ["Executor"]
