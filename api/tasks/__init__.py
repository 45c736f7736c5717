"""Tasks: the board's routes."""
