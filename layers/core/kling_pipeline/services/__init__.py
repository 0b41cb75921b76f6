"""The pipeline's flows (DESIGN.md §6), each one function that a thin handler calls."""
