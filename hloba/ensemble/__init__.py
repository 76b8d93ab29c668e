"""Time-lagged ensembles and the calibration of the hybrid background error variance."""
