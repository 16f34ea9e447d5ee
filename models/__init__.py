"""Networks only, installed as ``ablate.models``: trunks, the projector, the predictor registry, predictor spectra
and the BYOL/SimSiam pair."""
