"""The durable-state room: the interview store on Redis (Lua scripts), the transcript outbox,
and TRANSIENT (the Redis errors worth waiting for). It imports no other orchestrator room."""
