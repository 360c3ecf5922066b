"""`python -m haagent`: the same as the `haagent` command."""

import sys

from haagent.main import main

if __name__ == "__main__":
    sys.exit(main())
