"""Crash soak: rounds of mixed load against real signet-agent / signet-server processes, kill -9 at a random
moment, restart, and checks that every acknowledged operation survived (``python -m tests.soak.soak``)."""
