"""Networks only: trunks (``models.trunks``), the projector (``models.projector``), the predictor
registry (``models.predictors``), predictor spectra (``models.spectra``) and the BYOL/SimSiam pair
(``models.pair``)."""
