"""haagent: a high-availability agent for PostgreSQL on etcd v3."""

__version__ = "0.1.0"
