"""The shipped SQL files, as package data: found with importlib.resources, so they travel in the wheel."""
