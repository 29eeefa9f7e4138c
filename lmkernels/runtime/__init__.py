"""Launch fast path, device and Triton feature detection, access-mode resolution."""
