"""Jobs: the queue's commands, a board task's runs, claims and leases, and a worker's fenced
writes."""
