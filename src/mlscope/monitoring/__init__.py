"""Production monitoring: the prediction log, reference samples, drift, live metrics and the report."""
