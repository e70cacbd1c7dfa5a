"""Statistics over runs: is the difference between two models real?"""
