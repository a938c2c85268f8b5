"""Shared test helpers: cheap password hashing and migrated database templates (issue 13)."""
