"""Curriculum contrastive learning (docs/methods.md §3): SimCLR on the engine, Weighted NT-Xent, linear
evaluation. train.hooks.discover_methods imports these modules, which registers `simclr`."""
