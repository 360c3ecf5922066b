"""haactl: the command-line client of a haagent cluster (a patronictl counterpart)."""
