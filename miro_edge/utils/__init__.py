"""Small shared helpers: atomic files, registries, optional imports."""
