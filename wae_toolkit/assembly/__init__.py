"""Building a run's model from plugins: the one construction of each plugin
(:mod:`~wae_toolkit.assembly.components`) and the WAE module that holds the encoder, the decoder
and the prior (:mod:`~wae_toolkit.assembly.model`)."""
