"""Shared core: what every app may use and nothing in it uses an app."""
