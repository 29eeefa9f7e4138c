"""The benchmark harness behind `lmkernels bench` (GPU only)."""
