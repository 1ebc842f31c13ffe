"""What people look at: figures of evaluation results (:mod:`tts_gym.reports.plots`, PNG)."""
