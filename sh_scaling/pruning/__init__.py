"""sh_scaling.pruning"""
