"""Orchestrator runs and the service catalog: their read models."""
