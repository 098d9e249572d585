"""The execute stage: attempts against the providers behind chosen model names."""

from hybridgate.execute.executor import Attempt, Executor, Plan

__all__ = ["Attempt", "Executor", "Plan"]
