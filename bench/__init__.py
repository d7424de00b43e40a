"""``make bench``: the bot against nginx and a bare endpoint, side by side in one run."""
