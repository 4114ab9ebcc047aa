"""The runtime: source -> preprocess -> encoder -> detector -> sinks, on one device and precision.

``perceiver.Perceiver`` turns one frame into a ``result.PerceptionResult``; ``pipeline.Pipeline`` runs a source
through it with a latest-only hand-off (``latest.LatestSlot``) and exact counts; ``sinks`` write JSON lines, an MP4
overlay (``video_writer``) or keep results in memory; ``device``, ``preprocess`` and ``visualize`` are the pieces.
Modules are imported directly (``from perception.runtime.perceiver import Perceiver``), so importing this package
loads nothing heavy.
"""
