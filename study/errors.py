"""The study's error types, in one module that imports nothing else of the study.

Every component module raises these, and the configuration and planning layers catch them, so they
live below both: no module needs the other to know what went wrong.
"""


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and how to fix it."""
