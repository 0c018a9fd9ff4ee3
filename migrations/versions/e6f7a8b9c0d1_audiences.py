"""audiences: typed user attributes, segments, lists, campaign audiences, email click tracking

Revision ID: e6f7a8b9c0d1
Revises: d5f6a7b8c9e0
Create Date: 2026-11-27 12:28:18.584952

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'e6f7a8b9c0d1'
down_revision = 'd5f6a7b8c9e0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
    sa.UniqueConstraint('name', name=op.f('uq_segments_name'))
    )
    op.create_table('user_attributes',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_user_attributes'))
    )
    op.create_table('user_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('size', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_by', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_lists')),
    sa.UniqueConstraint('name', name=op.f('uq_user_lists_name'))
    )
    op.create_table('user_list_members',
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['user_lists.id'], name=op.f('fk_user_list_members_list_id_user_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('list_id', 'user_id', name=op.f('pk_user_list_members'))
    )
    with op.batch_alter_table('user_list_members', schema=None) as batch_op:
        batch_op.create_index('ix_user_list_members_user_id', ['user_id'], unique=False)

    op.create_table('link_clicks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('recipient_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('clicked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_link_clicks_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recipient_id'], ['recipients.id'], name=op.f('fk_link_clicks_recipient_id_recipients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_clicks')),
    sa.UniqueConstraint('recipient_id', 'url', name='uq_link_clicks_recipient_url')
    )
    with op.batch_alter_table('link_clicks', schema=None) as batch_op:
        batch_op.create_index('ix_link_clicks_campaign', ['campaign_id', 'clicked_at'], unique=False)
        batch_op.create_index('ix_link_clicks_user', ['user_id', 'campaign_id'], unique=False)

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('audience_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('audience_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('audience_frozen_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('audience_size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('track_clicks', sa.Boolean(), server_default='1', nullable=False))

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_read', ['read_at', 'user_id'], unique=False, postgresql_where=sa.text('read_at IS NOT NULL'), sqlite_where=sa.text('read_at IS NOT NULL'))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='{}', nullable=False))
        batch_op.create_index('ix_users_attributes', ['attributes'], unique=False, postgresql_using='gin', postgresql_ops={'attributes': 'jsonb_path_ops'})



def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_attributes', postgresql_using='gin', postgresql_ops={'attributes': 'jsonb_path_ops'})
        batch_op.drop_column('attributes')

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_read', postgresql_where=sa.text('read_at IS NOT NULL'), sqlite_where=sa.text('read_at IS NOT NULL'))

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('track_clicks')
        batch_op.drop_column('audience_size')
        batch_op.drop_column('audience_frozen_at')
        batch_op.drop_column('audience_name')
        batch_op.drop_column('audience_id')
        batch_op.drop_column('audience_kind')

    with op.batch_alter_table('link_clicks', schema=None) as batch_op:
        batch_op.drop_index('ix_link_clicks_user')
        batch_op.drop_index('ix_link_clicks_campaign')

    op.drop_table('link_clicks')
    with op.batch_alter_table('user_list_members', schema=None) as batch_op:
        batch_op.drop_index('ix_user_list_members_user_id')

    op.drop_table('user_list_members')
    op.drop_table('user_lists')
    op.drop_table('user_attributes')
    op.drop_table('segments')
