"""Database: models, engine/session factories, migrations."""
