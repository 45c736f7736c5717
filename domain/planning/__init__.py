"""Planning: PRD import (parsing, markers, the planner, graphs, previews, the ImportJob),
proposals, templates and schedules."""
