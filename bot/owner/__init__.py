"""The owner's page, apart from HTTP: its password, sessions and the numbers it shows (pure)."""
