"""The ways in: `http` (the REST API and the timeline page) and `cli` (the `sanctions`
command), over `app` (the application layer both call), over `schemas` (the shapes of questions
and answers they share)."""
