"""Datasets on disk: fetch the official archives (verified, resumable, unpacked atomically); check a dataset folder."""
