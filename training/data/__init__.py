"""Training data: reading frames (``frames``), sources of 7-frame samples (``sources``, ``video``, ``stills``), windows
that never span a scene cut (``windows``), and the batches a training run draws from them (``batches``).

Layers, lowest first: ``frames`` and ``windows`` import nothing of ``training``; ``video`` uses ``frames``; ``sources``
uses those three; ``stills`` uses ``frames`` and ``sources``; ``batches`` mixes the sources with ``training.scales``.
"""

from training.data.batches import TrainData, batch_iterator, build_sources, resolve_path
from training.data.sources import FrameFolders, SequenceSource, Source, VideoFile, VimeoSeptuplets
from training.data.stills import StillPhotos
from training.data.windows import detect_scene_cuts, valid_windows

__all__ = [
    "Source", "SequenceSource", "FrameFolders", "VimeoSeptuplets", "VideoFile", "StillPhotos",
    "TrainData", "batch_iterator", "build_sources", "resolve_path", "valid_windows", "detect_scene_cuts",
]
