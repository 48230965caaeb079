"""Defects: what a service found wrong, and its life until a repair is verified."""
