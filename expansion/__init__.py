"""Expansion Signals: shared core (settings, database, embedded services, CLI)."""
