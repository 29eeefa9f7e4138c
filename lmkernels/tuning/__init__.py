"""AOT tuners behind `lmkernels tune`: they time candidate configs on this GPU and write the JSON
tables that runtime/config_store.py serves (common.py: budget, atomic files, progress; one module
per op with its search space)."""
