"""The hostile-server suite (see README.md)."""
