"""Convex induced models: the dense, Gram and distributed solves, and the strategy choice."""
