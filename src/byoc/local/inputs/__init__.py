"""The engine's input modes beyond File mode: Pipe FIFOs, RecordIO framing, augmented manifests.

:mod:`pipe` feeds one FIFO per channel and epoch, from the job's channel definitions
(:class:`~byoc.job.ChannelDefinition`); :mod:`recordio` frames objects; :mod:`manifest` reads
an augmented manifest's local files. What a channel may be set to is checked by the job
(:func:`byoc.job.definition.check_channels`), not here.
"""
