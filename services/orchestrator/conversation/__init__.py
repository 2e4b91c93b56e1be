"""The per-session conversation loop's parts: turn-taking rules kept as small clock-driven state
machines, so each rule (check-in timer, barge-in) is tested alone with a FakeClock."""
