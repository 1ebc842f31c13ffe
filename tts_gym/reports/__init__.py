"""tts_gym.reports."""
