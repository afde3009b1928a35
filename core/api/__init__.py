"""API plumbing shared by every app: errors, parsing limits, pagination, permissions."""
