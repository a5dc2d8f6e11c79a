"""Operations over any runtime: health, doctor, backup and restore, migrate, support bundles."""
