"""haagent's REST API: Patroni's endpoints, health checks from the published status,
cluster actions handed to the HA loop, auth, TLS, Prometheus metrics and an OpenAPI document.

The engine builds one `Metrics` and one `RestApiServer` and feeds the metrics
(`record_decision`, `observe_loop`, `observe_etcd_call`).
"""

from haagent.api.metrics import Metrics
from haagent.api.server import RestApiServer

__all__ = ["Metrics", "RestApiServer"]
