"""Orchestrator runs: an agent's change to a running service (analyze, patch, build, restart,
verify, roll back), under the service's rules (allowed files, approval, one run at a time)."""
