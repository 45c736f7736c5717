"""Orchestrator runs and the service catalog: the commands (domain/orchestrator)."""
