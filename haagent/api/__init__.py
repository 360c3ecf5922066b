"""haagent's REST API: Patroni's endpoints, health checks from the published status,
changing requests handed to the HA loop (`changing.py`), auth, TLS, Prometheus metrics and an
OpenAPI document.

How the agent wires it::

    metrics = Metrics(scope=settings.scope, name=settings.name)
    server = RestApiServer(settings.restapi, controller, scope=..., name=..., metrics=metrics)
    await server.start()                       # TlsSettingsError / OSError on bad settings
    await server.reconfigure(new.restapi)      # on SIGHUP or POST /reload
    await server.stop()                        # on shutdown

What the engine owes it:

- `controller.status()` returns the last published `PublishedStatus` in O(1) and
  never blocks.  Publish a *new object* for every change (identity is the cache
  key), and publish the demoting status *before* stopping writes, so `/primary`
  turns 503 at once.  While holding the leader key set `leader_expires_at` to the
  lease's expiry on the monotonic clock: a cached 200 lapses with it even if the
  loop hangs.  `loop_finished_at` is monotonic too (for `/liveness`).
- `controller.submit()` / `patch_config()` / `replace_config()` answer with the
  HTTP code of the outcome (the `Controller` protocol in `haagent.engine.requests`, and
  `openapi.json` beside this file).
- Once per HA cycle: `metrics.record_decision(reason_code)` and
  `metrics.observe_loop(seconds)`; around each etcd request:
  `metrics.observe_etcd_call(op, seconds)`.
"""

from haagent.api.metrics import Metrics
from haagent.api.server import RestApiServer

__all__ = ["Metrics", "RestApiServer"]
