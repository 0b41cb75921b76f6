"""Chaos run: faults injected at every layer (AWS, handlers, the stack process, providers) and an accounting.

Test harness only: nothing here is deployed or imported by the pipeline's code.
"""
