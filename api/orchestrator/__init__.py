"""Orchestrator runs and the service catalog over HTTP."""
