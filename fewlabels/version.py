"""The package's version, at the bottom of the house: every room reads it here, never from the package face."""

__version__ = "0.2.0"
