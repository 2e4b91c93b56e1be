"""Video analysis: Gemini Live or offline screen analysis."""
