"""Speech to text: Deepgram streaming or offline pocketsphinx."""
