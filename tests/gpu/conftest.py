"""GPU tests: skipped (with the reason) on machines without CUDA."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _needs_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (torch.cuda.is_available() is false)")
    yield
    torch.cuda.set_per_process_memory_fraction(1.0)  # a test may have capped this process
    torch.cuda.empty_cache()
