"""A deterministic multi-node simulation: the real HA loop on in-memory etcd and PostgreSQL.

No processes, no sockets, no sleeps: a manual clock moves time, faults are
injected by name (partition, crash, freeze), and invariants are checked after
every single node cycle.
"""
