"""sh_scaling.simulation"""
