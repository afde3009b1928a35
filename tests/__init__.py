"""End-to-end tests: browser, API fuzzing, OpenAPI, bootstrap and integration with real services."""
