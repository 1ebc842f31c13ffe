"""Gymnasium environments over the compiled replay: the single env (:mod:`tts_gym.envs.env`), the
natively batched vector env (:mod:`tts_gym.envs.vector`), the read-only episode view for code
controllers, rendering, and the stable-baselines3 adapter (:mod:`tts_gym.envs.sb3`, optional extra)."""
