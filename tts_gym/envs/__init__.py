"""tts_gym.envs."""
