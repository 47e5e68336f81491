"""System kinds: one module per kind, registered in ``harness.models.registry``."""
