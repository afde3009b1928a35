"""Management commands of the guardian app."""
