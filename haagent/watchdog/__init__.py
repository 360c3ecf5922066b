"""The watchdog: a device that resets this node when the HA loop stops renewing.

`Watchdog` (manager.py) is what the HA engine uses; drivers talk to the kernel
device (`linux.py`) or, for tests only, to a simulator (`testing.py`,
`simulator.py`).
"""
