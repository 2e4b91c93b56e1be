"""Interview state, the conversation loop and the public Interviews API."""
