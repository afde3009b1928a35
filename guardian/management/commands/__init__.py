"""`guardian_train` (fit the classifier scorer) and `guardian_eval` (measure the scorers)."""
