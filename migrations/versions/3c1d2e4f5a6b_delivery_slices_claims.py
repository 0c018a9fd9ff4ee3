"""delivery: planning claim, chunk runs, job failures, lease tokens

Revision ID: 3c1d2e4f5a6b
Revises: dedb39d6de99
Create Date: 2026-11-27 02:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3c1d2e4f5a6b'
down_revision = 'dedb39d6de99'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('planned_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('campaign_chunks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('run', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('lease_token', sa.String(length=32), nullable=True))
    # Campaigns planned before this revision keep their chunks: mark them planned.
    op.execute("UPDATE campaigns SET planned_at = COALESCE(started_at, updated_at) "
               "WHERE id IN (SELECT DISTINCT campaign_id FROM campaign_chunks)")
    # attempts now counts job failures (it counted enqueues, starting at 1).
    op.execute("UPDATE campaign_chunks SET run = attempts, attempts = attempts - 1")


def downgrade():
    op.execute("UPDATE campaign_chunks SET attempts = run")
    with op.batch_alter_table('campaign_chunks', schema=None) as batch_op:
        batch_op.drop_column('lease_token')
        batch_op.drop_column('run')
        batch_op.drop_column('last_error')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('planned_at')
