"""Encoder and decoder networks of the built-in plugins (imports torch)."""
