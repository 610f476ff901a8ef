"""Bench-only experiments on the services (never part of `make bench`'s figures).

They run the real gateway with one thing changed from the outside, to measure
what a proposed service-side fix would buy before anyone makes it.
"""
