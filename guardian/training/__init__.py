"""Training the guardian's models: the classifier (`manage.py guardian_train`) and the SLM (`guardian_train_slm`).

`split` (pure Python) says which labelled rows are held out for validation; `train` (numpy, a
development dependency only) fits the classifier and writes `guardian/models/classifier.json`;
`slm` (torch, development only) trains the SLM with `tokenizer` and writes it with `export`.
Nothing here runs at serving time: the scorers read the artifacts without numpy or torch.
"""
