"""Training the guardian's classifier scorer (`manage.py guardian_train`).

`split` (pure Python) says which labelled rows are held out for validation; `train` (numpy, a
development dependency only) fits the models and writes `guardian/models/classifier.json`.
Nothing here runs at serving time: the scorer reads the artifact with pure Python.
"""
