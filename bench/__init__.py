"""Side-by-side benchmarks of the raster API against a vanilla titiler app (run with `python -m bench`).

Every comparison runs both sides in the same run, interleaved, because the machines we measure on are shared and
noisy: only ratios measured together mean anything.
"""
