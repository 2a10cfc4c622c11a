"""The key algorithm names the CLI and the configuration accept (signet.wire maps them to the API's enum)."""

KEY_ALGORITHM_CHOICES = ("rsa-2048", "rsa-3072", "rsa-4096", "p256", "p384")
