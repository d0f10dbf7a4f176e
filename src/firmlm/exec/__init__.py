"""Execution-grounded evaluation (InCoder-32B's EmbedCGen, rebuilt offline): tasks whose generated code is built
with a harness and run in a sandbox, each failure classified."""
