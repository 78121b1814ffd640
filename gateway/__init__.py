"""The gateway: app factory, settings, identity, middleware and CLI."""
