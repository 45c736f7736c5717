"""Tasks: the board's commands."""
