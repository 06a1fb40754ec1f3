"""The distribution's version, read statically by setuptools (``attr:``) and by the plugin."""

__version__ = "0.1.0"
