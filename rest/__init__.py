"""Versioned REST routers: adapters of a few lines over the service layer."""
