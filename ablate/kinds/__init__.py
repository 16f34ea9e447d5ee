"""Trial kinds: one record per kind of trial (its config, how it runs, what it reports, what it costs)."""
