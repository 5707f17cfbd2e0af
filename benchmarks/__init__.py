"""Speed, memory and accuracy benchmarks, each side by side with a baseline in the same run.

Run ``python -m benchmarks``; see ``benchmarks/RESULTS.md`` for the latest results.
"""
