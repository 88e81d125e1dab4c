"""Image captioning: a CNN encoder, an LSTM decoder with visual attention (Show, Attend, Tell).

Rooms: ``scenes`` (the synthetic corpus), ``images`` (reading pictures), ``data`` (corpora and
splits), ``model`` (nn.Modules), ``encoders`` (what the decoder reads), ``task`` (the shared
trainer's adapter), ``recipe`` (defaults), ``metrics`` (BLEU, CIDEr-D, grounding), ``plots`` (the
attention figure), ``api`` (train / load / describe / evaluate) and ``cli`` (``rnnkit caption``).
Nothing is imported here, so the command line stays fast.
"""
