"""product counts per category, active flag and stock, kept by triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from data import product_counts

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product_counts",
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_product_counts_category_id_categories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "category_id", "is_active", "in_stock", name=op.f("pk_product_counts")
        ),
    )
    # One transaction: creating the triggers locks products against writes until the
    # backfill below has counted them, so no write falls between the two.
    bind = op.get_bind()
    product_counts.install(bind)
    product_counts.rebuild(bind)


def downgrade() -> None:
    product_counts.uninstall(op.get_bind())
    op.drop_table("product_counts")
