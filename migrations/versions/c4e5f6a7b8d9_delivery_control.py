"""delivery control: paused state, canary wave, automatic halt, spread, four-eyes approval

Revision ID: c4e5f6a7b8d9
Revises: b7d1e2f3a4c5
Create Date: 2026-11-27 05:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e5f6a7b8d9'
down_revision = 'b7d1e2f3a4c5'
branch_labels = None
depends_on = None

UTC = lambda: sa.DateTime(timezone=True)  # noqa: E731


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('paused_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('paused_by', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('canary_size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('canary_percent', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('canary_hold_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('canary_seed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('canary_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('halt_percent', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('halt_window', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('spread_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('approval_requested_by', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('approval_requested_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('approval_requested_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('approved_at', UTC(), nullable=True))
    with op.batch_alter_table('recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wave', sa.SmallInteger(), nullable=True))
        batch_op.create_index('ix_recipients_canary', ['campaign_id', 'status'], unique=False,
                              postgresql_where=sa.text('wave IS NOT NULL'), sqlite_where=sa.text('wave IS NOT NULL'))
    with op.batch_alter_table('campaign_chunks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wave', sa.SmallInteger(), server_default='0', nullable=False))
    with op.batch_alter_table('template_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('edited_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=300), nullable=True))
    op.create_table(
        'workspace_settings',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.JSON(), nullable=False),
        sa.Column('updated_at', UTC(), nullable=False),
        sa.Column('updated_by', sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_workspace_settings')),
    )


def downgrade():
    op.drop_table('workspace_settings')
    with op.batch_alter_table('template_versions', schema=None) as batch_op:
        batch_op.drop_column('approved_by')
        batch_op.drop_column('edited_by_id')
    with op.batch_alter_table('campaign_chunks', schema=None) as batch_op:
        batch_op.drop_column('wave')
    with op.batch_alter_table('recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_recipients_canary')
        batch_op.drop_column('wave')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        for name in ('approved_at', 'approved_by', 'approval_requested_at', 'approval_requested_by_id',
                     'approval_requested_by', 'spread_minutes', 'halt_window', 'halt_percent', 'canary_state',
                     'canary_seed', 'canary_hold_minutes', 'canary_percent', 'canary_size', 'paused_by',
                     'paused_at', 'paused_reason'):
            batch_op.drop_column(name)
