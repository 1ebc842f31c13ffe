"""``python -m tts_gym.cli``: the ``tts-gym`` command."""
import sys

from tts_gym.cli import main

sys.exit(main())
