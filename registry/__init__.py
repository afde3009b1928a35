"""The Agent Registry: agents, roles, grants and credentials, and their change history."""
