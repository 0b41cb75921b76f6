"""HTTP routes of the public API as Powertools routers; `functions/api/app.py` only assembles them.

They live in the layer so the deployed function (CodeUri `functions/api/`) imports nothing but the
layer, and every module here stays a thin call into `kling_pipeline.services`.
"""
