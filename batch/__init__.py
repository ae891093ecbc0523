"""Batch runner: one algorithm over many scenes on Dask distributed (QGIS-free).

``python -m spectral_transformers.batch run ALG --inputs LIST.csv --output-dir DIR`` runs a
Processing algorithm's runtime task (``toareflectance``, ``cloudmask``, ``segment``,
``attentionmaps``, ...) once per CSV row, on a local Dask cluster or on an existing one
(``--scheduler``; SLURM/PBS through dask-jobqueue, see :mod:`.cluster`).

Layout:

- :mod:`.tasks`: the one place the batch runner meets the runtime: the parameter table
  (:mod:`..runtime.parameters`, shared with the Processing algorithms) and the runtime config.
- :mod:`.scenes`: the CSV list → scenes (parameter values, names, output paths).
- :mod:`.manifest`: ``DIR/manifest.jsonl`` records and the skip-on-rerun rule.
- :mod:`.worker`: what runs on a Dask worker for one scene (no QGIS, no Dask state).
- :mod:`.runner`: submission, retries after a worker died, progress, manifest writing.
- :mod:`.cluster`: LocalCluster on loopback, existing schedulers, the SLURM recipe.
- :mod:`.cli`: the command line.
"""
