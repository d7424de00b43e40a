"""Logging: loguru set-up, one-line safe fields, the multi-worker collector."""
