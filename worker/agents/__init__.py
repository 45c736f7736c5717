"""Agents: what the worker knows of each agent CLI (its command line, its prompt)."""
