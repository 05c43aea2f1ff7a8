"""Market-data models (filled in by the pipeline work)."""
