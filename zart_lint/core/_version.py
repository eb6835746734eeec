"""The version of zart-lint (also in the cache keys and the SARIF output)."""

__version__ = "0.1.0"
