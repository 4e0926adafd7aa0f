"""curriculum-bench: reproduce curriculum-learning studies from raw data to paper tables."""

__version__ = "0.1.0"
