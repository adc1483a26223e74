# CDC publishes these tables; REPLICA IDENTITY FULL makes Postgres log the whole
# old row on UPDATE and DELETE, so Debezium envelopes carry a complete `before`
# and unchanged TOASTed columns can be filled from it.
from django.db import migrations

CDC_TABLES = ["users", "posts", "follows", "likes", "comments", "mutes"]


class Migration(migrations.Migration):
    dependencies = [("feed", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=[f"ALTER TABLE {table} REPLICA IDENTITY FULL" for table in CDC_TABLES],
            reverse_sql=[f"ALTER TABLE {table} REPLICA IDENTITY DEFAULT" for table in CDC_TABLES],
        )
    ]
