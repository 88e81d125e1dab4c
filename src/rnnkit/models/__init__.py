"""Task models built from :mod:`rnnkit.nn` layers.

- :class:`RNNLanguageModel` (with :class:`LMConfig`): the language model of ``rnnkit lm``.
"""

from rnnkit.models.lm import LMConfig, RNNLanguageModel

__all__ = ["LMConfig", "RNNLanguageModel"]
