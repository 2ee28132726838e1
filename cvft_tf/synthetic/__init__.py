"""A built-in synthetic cross-view world, written in the CVUSA / CVACT layouts.

``world``: an unbounded procedural city (height field, albedo, materials) from a seed;
``render``: its north-up aerial tile and north-aligned ground panorama (ray-cast with
occlusion) for a location; ``writer``: datasets on disk that the real loaders read.
The geometric conventions the loaders rely on are in ``render``'s docstring.
"""

from cvft_tf.synthetic.render import (
    CAMERA_HEIGHT,
    MAX_DISTANCE,
    Appearance,
    default_cell_size,
    default_vertical_fov,
    render_aerial,
    render_pair,
    render_panorama,
    sun_visibility,
)
from cvft_tf.synthetic.world import (
    OPEN_MATERIALS,
    CityWorld,
    Material,
    Scene,
    Surface,
    sample_locations,
)
from cvft_tf.synthetic.writer import (
    CVACT_IMAGES,
    CVACT_RAW_IMAGES,
    CVUSA_IMAGES,
    UTM_ORIGIN,
    ImageSpec,
    write_cvact,
    write_cvusa,
)

__all__ = [
    "CAMERA_HEIGHT",
    "CVACT_IMAGES",
    "CVACT_RAW_IMAGES",
    "CVUSA_IMAGES",
    "MAX_DISTANCE",
    "OPEN_MATERIALS",
    "UTM_ORIGIN",
    "Appearance",
    "CityWorld",
    "ImageSpec",
    "Material",
    "Scene",
    "Surface",
    "default_cell_size",
    "default_vertical_fov",
    "render_aerial",
    "render_pair",
    "render_panorama",
    "sample_locations",
    "sun_visibility",
    "write_cvact",
    "write_cvusa",
]
