"""Command groups of the ``rnnkit`` command; each module exposes ``register(parser)``."""
