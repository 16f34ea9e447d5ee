"""Results to the paper's artefacts: tables and their text forms, the paper's numbers, figures, the report,
comparisons over seeds, status and trunk export."""
