"""The data layer: models, migrations, services, dataloaders and pagination.

Nothing here imports FastAPI, Starlette or Strawberry: both interfaces call in.
"""
