"""The compiled replay: the action layout, the transition kernels over explicit state, the
observation, the vote rule and its confidence, branch orders, and a plain-Python model of it all
(:mod:`tts_gym.core.spec_model`) that the property tests compare the kernels against."""
