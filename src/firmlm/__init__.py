"""firmlm: domain-adapt an open code LLM to embedded firmware and measure the gain."""

__version__ = "0.1.0"
