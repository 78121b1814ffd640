"""The Strawberry schema: types and resolvers, adapters over the service layer."""
