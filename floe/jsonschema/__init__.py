"""The JSON Schema files of floe's manifests: the single source of truth, shipped as package data."""
