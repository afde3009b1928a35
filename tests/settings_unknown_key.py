"""Test settings with a misspelt WARDEN key, to prove start-up refuses it."""

from config.settings.test import *  # noqa: F403
from config.settings.test import WARDEN

WARDEN = {**WARDEN, "NOT_A_SETTING": True}
