"""Leaf modules: the names every layer shares (task kinds, the configuration's choices, the variant rule)
and the small utilities they all use (atomic file writes, deep merges). They import nothing of the project."""
