"""Production monitoring: the prediction log, drift against the training reference, the production report."""
