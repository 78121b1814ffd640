"""an index that counts a price range of active products without reading the rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 03:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_products_is_active_price_cents", "products", ["is_active", "price_cents"])


def downgrade() -> None:
    op.drop_index("ix_products_is_active_price_cents", table_name="products")
