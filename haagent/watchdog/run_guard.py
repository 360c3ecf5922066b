"""Starts the agent-death guard (guard.py) with the guard's arguments:

    python3 -I -S .../haagent/watchdog/run_guard.py --data-dir DIR ...

Python compiles a script's source at every start but reads an imported module from its
.pyc: started through this launcher, the guard is about 1.5 MB smaller than run as a
script.  Appended to the path, not prepended: the standard library stays first.
"""

import sys

sys.path.append(__file__.rpartition("/")[0])
import guard  # type: ignore[import-not-found]

sys.exit(guard.main())
