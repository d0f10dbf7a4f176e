"""Readers of hardware documents: one module per kind, each turning a file into sections."""
