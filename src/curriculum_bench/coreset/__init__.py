"""The coreset study (docs/methods.md §5): forgetting statistics, selection, and planning.

The training-time parts are hooks in curricula/ (`forgetting`, `coreset_subset`); this
package holds the pure steps between training runs and the workflow's plan of them.
"""
