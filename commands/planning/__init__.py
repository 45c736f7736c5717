"""Planning: PRD imports and their plans, proposals, templates and schedules."""
