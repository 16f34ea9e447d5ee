"""What a trial is: strict frozen-dataclass configs, their dotted-key tree helpers, YAML with line numbers, and the
registry of trial kinds. No torch, no pandas."""
