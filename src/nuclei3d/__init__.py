"""nuclei3d: the stage library behind the 3D nuclei segmentation workflow.

One module per workflow stage (:mod:`resample`, :mod:`equalize`, :mod:`background`,
:mod:`segment`, :mod:`overlay`, :mod:`measure`), plus TIFF I/O (:mod:`io`), OpenCL
device choice (:mod:`device`), the demo-data generator (:mod:`demo`) and code
fingerprints for reruns (:mod:`fingerprint`). Every stage function takes NumPy
arrays and returns NumPy arrays; GPU kernels run on pyclesperanto's current device.
"""

__version__ = "0.1.0"
