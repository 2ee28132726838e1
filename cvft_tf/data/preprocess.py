"""Image preprocessing of the original CVFT code: OpenCV BGR, float32, VGG mean subtracted.

The original reads images with ``cv2.imread`` (BGR), resizes with ``cv2.INTER_AREA`` and
subtracts a per-channel mean; there is no scaling. Note the red mean is 123.6, not the
usual 123.68 (see ``shared/specs/cvft-original.md``).
"""

VGG_MEAN_BGR = (103.939, 116.779, 123.6)
"""Per-channel mean subtracted from BGR pixels in [0, 255], as the original code does."""

GROUND_SIZE = (112, 616)
"""(height, width) of the ground panorama fed to the network (CVUSA 224x1232 halved)."""

AERIAL_SIZE = (256, 256)
"""(height, width) of the aerial tile fed to the network."""
