"""Unit-testing services without a running server: see ``splice.testing.plugin``."""
