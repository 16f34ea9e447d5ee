"""What a sweep is and which trials it makes: the sweep-file schema, loading with complete validation, the pure
expansion into trials, and the description ``ablate check`` prints."""
