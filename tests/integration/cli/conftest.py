"""Fixtures of the haactl integration tests: a real three-node cluster (see haactl_lab)."""

from haactl_lab import haactl, lab, ready

__all__ = ["haactl", "lab", "ready"]
