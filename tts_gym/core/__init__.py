"""tts_gym.core."""
