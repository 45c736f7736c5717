"""Planning: PRD import, proposals, templates and schedules routes."""
