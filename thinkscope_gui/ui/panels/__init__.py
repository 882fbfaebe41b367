"""Dock panels: acquisition, training, models and objectives."""
