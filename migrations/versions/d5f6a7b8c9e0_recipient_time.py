"""recipient time: local-time waves, quiet hours and frequency-cap switches per campaign

Revision ID: d5f6a7b8c9e0
Revises: c4e5f6a7b8d9
Create Date: 2026-11-27 09:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5f6a7b8c9e0'
down_revision = 'c4e5f6a7b8d9'
branch_labels = None
depends_on = None


def upgrade():
    # A plain '1' default (true on both databases): on SQLite an expression default would make the
    # batch operation rebuild the campaigns table instead of a plain ALTER TABLE ADD COLUMN.
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_at', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('quiet_hours', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('frequency_cap', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('wave_count', sa.Integer(), server_default='0', nullable=False))
    # Campaigns sent before this release were one-call sends or campaigns; one-call sends stay exempt.
    op.execute("UPDATE campaigns SET quiet_hours = false, frequency_cap = false WHERE kind <> 'campaign'")
    # The canary's partial index held every row with a wave; timed waves (2, 3, ...) stay out of it.
    with op.batch_alter_table('recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_recipients_canary')
        batch_op.create_index('ix_recipients_canary', ['campaign_id', 'status'], unique=False,
                              postgresql_where=sa.text('wave = 1'), sqlite_where=sa.text('wave = 1'))
    op.create_table(
        'campaign_waves',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.SmallInteger(), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('local_time', sa.String(length=5), nullable=True),
        sa.Column('reason', sa.String(length=16), nullable=False),
        sa.Column('zones', sa.JSON(), nullable=False),
        sa.Column('recipients', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_waves_campaign_id_campaigns'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_waves')),
        sa.UniqueConstraint('campaign_id', 'number', name='uq_campaign_waves_number'),
    )


def downgrade():
    op.drop_table('campaign_waves')
    with op.batch_alter_table('recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_recipients_canary')
        batch_op.create_index('ix_recipients_canary', ['campaign_id', 'status'], unique=False,
                              postgresql_where=sa.text('wave IS NOT NULL'), sqlite_where=sa.text('wave IS NOT NULL'))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('wave_count')
        batch_op.drop_column('frequency_cap')
        batch_op.drop_column('quiet_hours')
        batch_op.drop_column('send_at')
