"""The bots an owner would pick instead of this one, measured beside it by ``make bench``."""
