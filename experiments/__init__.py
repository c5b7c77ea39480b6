"""Launchers: the only code that reads flags."""
