"""Fuzzing harness: atheris targets over every input the agent and the server parse (see README.md)."""
