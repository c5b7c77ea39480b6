"""Diagnostics: the checks and pictures of the talk."""
