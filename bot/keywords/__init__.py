"""Keyword rules: their settings, the compiled book, the router and the `bot check` table."""
