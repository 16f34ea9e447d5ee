"""One pretraining trial in one process (torch, never Ray): the loop, data, augmentation, optimizers, evaluation,
torch DDP and the memory estimate."""
