"""Jobs: the queue's routes, a run's output, artifacts and controls, and quick runs."""
