"""The compiled read path: catalog reads answered by one SQL statement (PostgreSQL)."""
