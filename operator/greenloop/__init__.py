"""greenloop: reconcile a staging environment toward all end-to-end tests passing."""

__version__ = "0.1.0"
