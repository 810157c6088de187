"""StreamSpace package."""
