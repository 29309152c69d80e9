"""Training inputs beyond File mode: Pipe FIFOs, RecordIO framing, augmented manifests.

:mod:`config` turns options and ``byoc.toml`` into each channel's settings and
refuses what CreateTrainingJob refuses; :mod:`pipe` feeds one FIFO per channel
and epoch; :mod:`recordio` frames objects; :mod:`manifest` expands augmented
manifests.
"""
