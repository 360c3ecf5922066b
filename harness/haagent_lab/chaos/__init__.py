"""The failure suite: the seed lab's failure scenarios on a real three-node lab, with
invariants and figures (`python -m haagent_lab.chaos`, `dev/chaos`)."""
