"""Faces from raw video: RetinaFace detection, the track's face, eye-aligned crops in the organizers' layout.

``detector`` (the network, its weights, prior boxes, decoding, NMS), ``align`` (crop geometry and which face is
the track's), ``extract`` (videos → crops in the store, resumable per track). ``abaw faces`` and ``abaw predict``
use them, and the video kind's ``faces: retinaface`` setting trains on their crops.
"""

from harness.faces.detector import FaceError

__all__ = ["FaceError"]
