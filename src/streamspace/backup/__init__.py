"""Backup and restore of an installation: its database, its data directory's secrets and its
users' home volumes, in one archive (`streamspace backup` / `streamspace restore`)."""
