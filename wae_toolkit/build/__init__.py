"""Building a run's model from plugins: the checks that need the plugin classes, the one
construction of each plugin (:mod:`~wae_toolkit.build.components`) and the WAE module that holds
the encoder, the decoder and the prior (:mod:`~wae_toolkit.build.model`)."""
