"""Tasks: the board read model and the scheduler's runs of ready tasks."""
