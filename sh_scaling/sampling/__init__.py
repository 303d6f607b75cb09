"""sh_scaling.sampling"""
