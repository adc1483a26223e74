# The CDC publication lists only the users columns ranking needs (no password hash,
# no e-mail), and PostgreSQL requires a publication's column list to cover the
# table's replica identity. FULL would cover every column, so users goes back to
# the primary key identity. Nothing is lost: the published users columns are short
# (varchar 150/100, bool, timestamptz) and are never TOASTed out of line, so an
# update never needs the old row to fill an unchanged value, and a delete only
# needs the key. The other tables keep REPLICA IDENTITY FULL.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("feed", "0002_replica_identity_full")]

    operations = [
        migrations.RunSQL(
            sql="ALTER TABLE users REPLICA IDENTITY DEFAULT",
            reverse_sql="ALTER TABLE users REPLICA IDENTITY FULL",
        )
    ]
