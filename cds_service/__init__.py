"""CDS Hooks 2.0 service for CMV treatment in immunocompromised patients."""

__version__ = "0.1.0"
