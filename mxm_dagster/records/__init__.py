"""What crosses between processes: plain, serialisable records."""
