"""Measurements of where this implementation and the authors' code differ."""
