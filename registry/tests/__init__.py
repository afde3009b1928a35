"""Tests of the registry app: services, selectors, API, admin, migrations."""
