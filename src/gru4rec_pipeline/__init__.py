"""GRU4Rec session-based recommendation on RSC15: data preparation, training, evaluation, reporting."""

__version__ = "0.1.0"
