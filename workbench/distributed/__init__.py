"""The heavy work on Ray: sweeps, automatic λ and toxicity sampling across machines.

Each worker is a Ray actor that loads the base and the modules once, then measures the
points it is sent; results stream back to the caller point by point. The caller keeps the
plan (`eval.sweep.plan_jobs`) and the scoring of toxicity samples, so a Ray sweep's rows
are the local backend's rows. Ray is imported only when this backend is chosen.
"""
