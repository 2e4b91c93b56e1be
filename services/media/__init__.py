"""media: the WebRTC gateway between candidates' browsers and the orchestrator (issue 9)."""
