"""The parts algorithms are built from, apart from the algorithms themselves (one file each in the folder above).

``base`` (the Algorithm interface, its setup context and the registry by name), ``options`` (each
algorithm's options, declared once), ``consistency`` (the thresholded consistency step, VAT),
``thresholds`` (fixed, curriculum, self-adaptive and soft thresholds, distribution alignment),
``pretraining`` (the two-view self-supervised base classes), ``graph`` (kNN graph and harmonic
labels), ``parts`` (small shared helpers), ``mixing`` (mixup, sharpening), ``ramps`` (ramp-ups) and
``result`` (the named-loss dict a step returns). Nothing here registers an algorithm.
"""
