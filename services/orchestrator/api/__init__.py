"""The Interviews API room: requests in (gRPC servicer, Redis command stream, client, CLI),
validated and authenticated, turned into store changes. It may use store/ and plans; it never
imports the conversation loop (a live session picks changes up from the control stream)."""
