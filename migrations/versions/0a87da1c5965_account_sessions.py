"""account sessions: one row per signed-in dashboard session (logout and idle end it)

Revision ID: 0a87da1c5965
Revises: 3c1d2e4f5a6b
Create Date: 2026-11-27 02:53:13.701910

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0a87da1c5965'
down_revision = '3c1d2e4f5a6b'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('account_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_sessions_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_account_sessions'))
    )
    with op.batch_alter_table('account_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_sessions_account_id'), ['account_id'], unique=False)


def downgrade():
    with op.batch_alter_table('account_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_sessions_account_id'))
    op.drop_table('account_sessions')
