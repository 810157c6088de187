"""Database: engine, records, migrations, repositories."""
