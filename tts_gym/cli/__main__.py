"""``python -m tts_gym.cli`` = ``tts-gym``."""
import sys

from tts_gym.cli import main

sys.exit(main())
