"""haagent's test harness, kept out of the product (`haagent` never imports it).

- `lab`: a three-node cluster on loopback (etcd, agents, PostgreSQL, HAProxy), `dev/lab`;
- `chaos`: the failure suite on that lab, `dev/chaos` (`python -m haagent_lab.chaos`);
- `sim`: the deterministic multi-node simulation of the real HA loop, in memory;
- `watchdog`: the watchdog simulator, its `testing` driver and an in-memory driver;
- `fake_api`: an in-memory REST controller and ready-made published statuses.
"""
