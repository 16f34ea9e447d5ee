"""Theory in the loop: the paper's linear-network dynamics (Lemma 1) integrated as the ``linear_dynamics`` trial
kind, its closed-form bounds, and its figures."""
