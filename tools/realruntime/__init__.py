"""Tooling to run this project's Python Workflows for real, offline, under workerd + wrangler."""
