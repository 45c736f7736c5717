"""Planning: the imports, proposals, templates and schedules read models, and the scheduler's
parts that release import waves and fire schedules."""
