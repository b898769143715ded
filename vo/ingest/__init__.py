"""Ingest of datasets: ObsCore rows from FITS headers (:mod:`vo.ingest.obscore`, no I/O) and
their upsert into the database with the survey rows (:mod:`vo.ingest.datasets`).

Pixel data are never read here: only header blocks.
"""
