"""viewer time zone on accounts; retry-failed drafts link to their original

Revision ID: b7d1e2f3a4c5
Revises: 0a87da1c5965
Create Date: 2026-11-27 03:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d1e2f3a4c5'
down_revision = '0a87da1c5965'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_of_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_campaigns_retry_of_id'), ['retry_of_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_campaigns_retry_of_id_campaigns'), 'campaigns', ['retry_of_id'],
                                    ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_campaigns_retry_of_id_campaigns'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_campaigns_retry_of_id'))
        batch_op.drop_column('retry_of_id')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('timezone')
