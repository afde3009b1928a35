"""The registry's REST API (/api/v1/agents, roles, grants, credentials)."""
