"""The interviewer's language model: Gemini or the offline scripted interviewer."""
