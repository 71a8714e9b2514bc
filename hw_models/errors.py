"""Errors raised for bad user input (presets, mappings, layer tables)."""


class ConfigError(ValueError):
    """A user-supplied input is invalid; the message is one line meant for the user."""
