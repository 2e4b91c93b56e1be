"""One live session's parts (README "Modules", docs/architecture.md): connect.py joins, session.py
runs and routes; listener, floor, transcript, interview_view, llm_request and ownership each hold
one concern, and the turn-taking rules are small clock-driven state machines, so each rule
(check-in timer, barge-in) is tested alone with a FakeClock."""
