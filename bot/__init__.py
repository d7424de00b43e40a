"""WeChat official-account bot that hands out short-lived signed download links."""

__version__ = "0.1.0"
