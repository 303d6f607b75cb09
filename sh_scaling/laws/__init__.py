"""sh_scaling.laws"""
