"""Datasets: sources that build raw arrays, and the canonical on-disk store."""
