"""Glue between :mod:`sh_scaling` and training frameworks.

Each integration imports its framework lazily, so ``import sh_scaling`` never imports torch.
"""
