"""The failure suite: network, power, process, CPU and etcd faults and the stalls a lease
fence must survive, on a real three-node lab, with invariants and figures
(`python -m haagent_lab.chaos`, `dev/chaos`)."""
