"""Tasks: the board's items, their states (a table), their spec, dependency graphs, the
pipelines a task type runs, and TASKS.md."""
