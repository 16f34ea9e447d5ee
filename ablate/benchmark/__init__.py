"""``ablate bench``: every cost of a sweep measured side by side with a baseline in one run, as ratios."""
