"""Local-only tooling: the provider simulator and the local stack. Never deployed."""
