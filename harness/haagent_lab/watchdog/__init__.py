"""Watchdog stand-ins for tests and the lab; none of them protects anything.

`simulator.py` plays the kernel watchdog's part for one node (a process);
`testing_driver.py` is its client, haagent's `watchdog.driver: testing`, which
this package provides to haagent through the `haagent.watchdog_drivers` entry
point; `fake_driver.py` is an in-memory driver; `proctree.py` finds and kills a
node's processes for the simulator.
"""
