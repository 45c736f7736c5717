"""The dashboard: server-rendered pages at / for people, beside the API for programs.

GET pages read the read models only (the board, the queue, the worker registry), as the API's
GET routes do; the task history and the audit log read the log, which is what they show. Every
action is a form post (or the same form from a script, its CSRF token in a header) that runs the
same command function as the API's route. Live parts refresh from `/live` (SSE over the
partition logs). Sessions, CSRF and the signing secret are in `session`; templates and assets
ship in `templates/` and `static/` (no build step, no CDN).
"""
