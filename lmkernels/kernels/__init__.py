"""@triton.jit bodies (private). Public entry points live in lmkernels.ops."""
