"""Renders a ``Scene`` as a north-up aerial tile and a north-aligned ground panorama.

Geometry (the contract the CVUSA / CVACT loaders rely on):

- Aerial tile, ``size`` x ``size`` pixels covering ``extent`` metres (ground sampling
  distance ``gsd = extent / size``): orthographic, **north up, east right**, the camera
  position at the tile centre. Pixel ``(row, col)`` is centred at
  ``east = cx + (col + 0.5 - size / 2) * gsd``, ``north = cy - (row + 0.5 - size / 2) * gsd``.
- Panorama, ``height`` x ``width`` pixels, equirectangular, seen from ``camera_height``
  metres above the ground: column ``x`` looks at the azimuth (degrees clockwise from north,
  seen from above) ``360 * (x + 0.5) / width - 180``, so **north is the centre column**
  ``width / 2``, east is at ``3 * width / 4``, west at ``width / 4`` and south at both
  edges (as CVUSA). Row ``y`` looks at the elevation
  ``vertical_fov / 2 - (y + 0.5) * vertical_fov / height`` degrees: the horizon is the
  middle row. ``default_vertical_fov`` gives square pixels (360 * height / width degrees:
  65.5 degrees, +-32.7 about the horizon, for CVUSA's 224 x 1232); CVACT's raw panoramas
  are the full 180 degrees, and its pre-cut ones the middle half of that, 90 degrees.

Each pixel of the panorama casts a ray over the height field: the ray of a column visits
cells at increasing distances, and the first cell whose top rises above the ray occludes
everything behind it (a vectorised running maximum of the elevation slopes of the cells'
tops, searched with ``np.searchsorted``); rays that meet nothing see the sky. What the ray
hits is a top (ground, roof) or a side (wall, canopy, car body); walls get windows, tops
get sun shadows, everything gets distance fog.

The two views differ in appearance as real pairs do: each gets its own ``Appearance``
(sun direction, ambient light, exposure, white balance, contrast, haze or fog, sky,
clouds, blur and sensor noise), drawn independently by ``Appearance.random``.
"""

import dataclasses

import cv2
import numpy as np

from cvft_tf.synthetic.world import FLOOR_HEIGHT, Material

CAMERA_HEIGHT = 2.5
"""Height of the panorama camera above the ground, metres (a street-view car's mast)."""

MAX_DISTANCE = 120.0
"""How far the panorama's rays travel, metres (beyond that only fog and sky)."""

MAX_SHADOW = 96.0
"""Longest cast shadow, metres (a low sun behind a tower is cut there)."""

_SLOPE_LIMIT = 1.0e3  # |tan(elevation)| is clipped to this (89.94 degrees)


def default_vertical_fov(height, width):
    """Vertical field of view in degrees giving square pixels: ``360 * height / width``."""
    return 360.0 * height / width


@dataclasses.dataclass(frozen=True)
class Appearance:
    """How one view is lit and imaged.

    Attributes:
      sun_azimuth: degrees clockwise from north.
      sun_elevation: degrees above the horizon.
      ambient: light from the sky; the sun adds ``1.2 - ambient`` to a surface facing it.
      exposure: overall gain.
      white_balance: (r, g, b) gains.
      contrast: exponent applied to the [0, 1] image (1: none).
      haze: aerial only, share of ``haze_colour`` mixed into every pixel.
      haze_colour: RGB in [0, 1].
      fog_distance: ground only, metres over which light falls to 1/e.
      sky_horizon: RGB of the sky at the horizon (also the fog colour).
      sky_zenith: RGB of the sky overhead.
      cloud_cover: share of the sky under clouds, in [0, 1].
      blur: Gaussian blur sigma, pixels.
      noise: standard deviation of the per-pixel sensor noise on the [0, 1] scale.
      seed: seeds the clouds and the sensor noise.
    """

    sun_azimuth: float = 135.0
    sun_elevation: float = 50.0
    ambient: float = 0.45
    exposure: float = 1.0
    white_balance: tuple = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    haze: float = 0.0
    haze_colour: tuple = (0.72, 0.75, 0.80)
    fog_distance: float = 600.0
    sky_horizon: tuple = (0.80, 0.85, 0.92)
    sky_zenith: tuple = (0.30, 0.50, 0.85)
    cloud_cover: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    seed: int = 0

    @classmethod
    def random(cls, rng, view):
        """A random appearance for ``view`` (``"aerial"`` or ``"ground"``) from a numpy Generator.

        Aerial: sun 40 to 75 degrees high, haze, blur. Ground: sun 15 to 70 degrees high, a
        clear to overcast sky with clouds, fog. Both: any sun azimuth, ambient light,
        exposure, white balance and contrast jitter, sensor noise.
        """
        white_balance = tuple(float(g) for g in 1.0 + rng.uniform(-0.08, 0.08, 3))
        common = {
            "sun_azimuth": float(rng.uniform(0.0, 360.0)),
            "ambient": float(rng.uniform(0.35, 0.6)),
            "exposure": float(rng.uniform(0.85, 1.15)),
            "white_balance": white_balance,
            "contrast": float(rng.uniform(0.85, 1.15)),
            "noise": float(rng.uniform(0.008, 0.025)),
            "seed": int(rng.integers(2**31)),
        }
        if view == "aerial":
            return cls(
                sun_elevation=float(rng.uniform(40.0, 75.0)),
                haze=float(rng.uniform(0.0, 0.2)),
                blur=float(rng.uniform(0.3, 0.9)),
                **common,
            )
        if view != "ground":
            raise ValueError(f"view must be 'aerial' or 'ground', not {view!r}")
        overcast = float(rng.uniform(0.0, 1.0)) ** 2
        clear_zenith = np.array([0.28, 0.48, 0.85]) + rng.uniform(-0.05, 0.05, 3)
        clear_horizon = np.array([0.82, 0.86, 0.92])
        grey = np.array([0.72, 0.74, 0.78])
        zenith = clear_zenith + (grey - clear_zenith) * overcast
        horizon = clear_horizon + (grey + 0.08 - clear_horizon) * overcast
        return cls(
            sun_elevation=float(rng.uniform(15.0, 70.0)),
            fog_distance=float(rng.uniform(250.0, 800.0)),
            sky_horizon=tuple(float(c) for c in horizon),
            sky_zenith=tuple(float(c) for c in zenith),
            cloud_cover=float(np.clip(overcast + rng.uniform(0.0, 0.5), 0.0, 1.0)),
            blur=float(rng.uniform(0.0, 0.6)),
            **common,
        )


def _sun(appearance):
    """(east, north, up) unit vector towards the sun and the direct-light strength."""
    azimuth = np.deg2rad(appearance.sun_azimuth)
    elevation = np.deg2rad(appearance.sun_elevation)
    direction = np.array(
        [np.sin(azimuth) * np.cos(elevation), np.cos(azimuth) * np.cos(elevation), np.sin(elevation)]
    )
    return direction, 1.2 - appearance.ambient


def sun_visibility(scene, appearance, stride=1):
    """Which cells of a scene see the sun (cast shadows over the height field).

    Each cell marches towards the sun in steps of ``stride`` cells, up to ``MAX_SHADOW``
    metres, and is in shadow when a cell on the way rises above the sun ray; heights are
    point-sampled every ``stride`` cells and the result is bilinearly enlarged back, which
    softens shadow edges.

    Args:
      scene: ``Scene``.
      appearance: ``Appearance`` (its sun direction).
      stride: subsampling of the raster (1: full resolution).

    Returns:
      float32 [rows, cols] in [0, 1], 1 where the sun is visible.
    """
    height = scene.height[::stride, ::stride]
    step = scene.cell_size * stride
    direction, _ = _sun(appearance)
    tan_elevation = direction[2] / max(np.hypot(direction[0], direction[1]), 1e-6)
    top = float(height.max())
    length = min(top / max(tan_elevation, 1e-3), MAX_SHADOW, step * max(height.shape))
    steps = int(np.ceil(length / step))
    rows, cols = height.shape
    unit_col = direction[0] / np.hypot(direction[0], direction[1])
    unit_row = -direction[1] / np.hypot(direction[0], direction[1])
    pad = steps + 1
    padded = np.zeros((rows + 2 * pad, cols + 2 * pad), np.float32)
    padded[pad : pad + rows, pad : pad + cols] = height
    blocker = np.full(height.shape, -np.inf, np.float32)
    for i in range(1, steps + 1):
        dr = int(round(i * unit_row))
        dc = int(round(i * unit_col))
        ahead = padded[pad + dr : pad + dr + rows, pad + dc : pad + dc + cols]
        np.maximum(blocker, ahead - np.float32(i * step * tan_elevation), out=blocker)
    lit = (blocker <= height + 0.05).astype(np.float32)
    if stride > 1:
        size = (scene.height.shape[1], scene.height.shape[0])
        lit = cv2.resize(lit, size, interpolation=cv2.INTER_LINEAR)
    return lit


def _finish(image, appearance, rng):
    """Exposure, white balance, contrast, blur and noise; float RGB -> uint8 RGB."""
    gain = np.float32(appearance.exposure) * np.asarray(appearance.white_balance, np.float32)
    image = image * gain
    image = np.clip(image, 0.0, 1.0) ** np.float32(appearance.contrast)
    if appearance.blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), appearance.blur)
    if appearance.noise > 0:
        image = image + np.float32(appearance.noise) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_aerial(scene, center, size, extent, appearance=Appearance()):
    """Orthographic north-up view of a scene, centred on ``center``.

    Args:
      scene: ``Scene`` covering the tile (and, for shadows, what casts into it).
      center: (east, north) of the tile centre (the camera position), metres.
      size: side of the tile, pixels.
      extent: side of the tile, metres (ground sampling distance ``extent / size``).
      appearance: ``Appearance`` (sun, haze, colour, blur, noise).

    Returns:
      uint8 [size, size, 3], RGB.
    """
    direction, direct = _sun(appearance)
    lit = sun_visibility(scene, appearance, stride=1 if scene.cell_size >= 0.75 else 2)
    light = np.float32(appearance.ambient) + np.float32(direct * direction[2]) * lit
    colour = scene.albedo * light[..., None]
    # Render at the raster's own resolution when the tile is coarser, then area-average.
    work = max(size, int(round(extent / scene.cell_size)))
    scale = extent / work / scene.cell_size  # raster cells per working pixel
    col0 = (center[0] - extent / 2 - scene.origin[0]) / scene.cell_size
    row0 = (scene.origin[1] - center[1] - extent / 2) / scene.cell_size
    matrix = np.array(
        [[scale, 0.0, col0 + 0.5 * scale - 0.5], [0.0, scale, row0 + 0.5 * scale - 0.5]], np.float64
    )
    image = cv2.warpAffine(
        colour, matrix, (work, work), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if work != size:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    haze = np.float32(appearance.haze)
    image = image * (1 - haze) + haze * np.asarray(appearance.haze_colour, np.float32)
    return _finish(image, appearance, np.random.default_rng([appearance.seed, 1]))


def _ray_distances(cell_size, max_distance):
    """Sample distances along a ray: one cell apart near the camera, then 2 % apart."""
    growth = 0.02
    knee = cell_size / growth
    near = np.arange(cell_size, min(knee, max_distance), cell_size)
    count = int(np.ceil(np.log(max(max_distance / knee, 1.0)) / np.log1p(growth)))
    far = knee * (1 + growth) ** np.arange(1, count + 1)
    return np.concatenate([near, far[far <= max_distance * (1 + growth)]])


def _first_hits(top, distance, slope, camera_height):
    """First sample each ray meets, for rays of given slopes along every column.

    A ray of slope ``s = tan(elevation)`` from ``camera_height`` passes above sample ``k``
    when ``camera_height + distance[k] * s > top[k]``, i.e. ``s`` exceeds the sample's
    slope ``(top[k] - camera_height) / distance[k]``; it is stopped by the first sample
    where the running maximum of those slopes reaches ``s``. One ``np.searchsorted`` over
    all columns at once (each column shifted by a constant keeps them sorted).

    Args:
      top: float [columns, samples], occluder heights along each column's ray, metres.
      distance: float [samples], increasing, metres.
      slope: float [rays], tan(elevation) of the rays of every column.
      camera_height: metres.

    Returns:
      int64 [rays, columns], index of the first sample hit; ``samples`` where none is.
    """
    columns, samples = top.shape
    horizon = np.maximum.accumulate((top - camera_height) / distance, axis=1)
    horizon = np.clip(horizon, -_SLOPE_LIMIT, _SLOPE_LIMIT)
    slope = np.clip(slope, 1 - _SLOPE_LIMIT, _SLOPE_LIMIT - 1)
    offset = 4 * _SLOPE_LIMIT * np.arange(columns)[:, None]
    first = np.searchsorted((horizon + offset).ravel(), (slope[None, :] + offset).ravel())
    return (first.reshape(columns, slope.size) - samples * np.arange(columns)[:, None]).T


def _value_noise(rng, x, y):
    """Smooth noise in [0, 1] at lattice coordinates x, y (float32 [h, w]), tiling every 256."""
    table = rng.random((256, 256), dtype=np.float32)
    return cv2.remap(
        table, np.mod(x, 256).astype(np.float32), np.mod(y, 256).astype(np.float32),
        interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP,
    )


def _sky(azimuth, elevation, appearance, rng):
    """Sky colour [h, w, 3] for view directions (radians, azimuth [w], elevation [h])."""
    horizon = np.asarray(appearance.sky_horizon, np.float32)
    zenith = np.asarray(appearance.sky_zenith, np.float32)
    up = np.clip(np.sin(elevation), 0.0, 1.0).astype(np.float32)[:, None, None]
    sky = horizon + (zenith - horizon) * np.sqrt(up)
    direction, _ = _sun(appearance)
    horizontal = np.sin(azimuth) * direction[0] + np.cos(azimuth) * direction[1]
    cos_sun = (
        np.cos(elevation)[:, None] * horizontal[None, :] + np.sin(elevation)[:, None] * direction[2]
    ).astype(np.float32)
    sky = sky + np.float32(0.35) * np.exp(np.float32(40.0) * (cos_sun - 1))[..., None]
    if appearance.cloud_cover > 0:
        # Clouds on a plane 1 km up, seen in perspective (seamless in azimuth).
        reach = 1000.0 / np.maximum(np.tan(np.maximum(elevation, np.deg2rad(2.0))), 1e-3)
        x = (reach[:, None] * np.sin(azimuth)[None, :] / 180.0).astype(np.float32)
        y = (reach[:, None] * np.cos(azimuth)[None, :] / 180.0).astype(np.float32)
        density = 0.65 * _value_noise(rng, x, y) + 0.35 * _value_noise(rng, 3.1 * x, 3.1 * y)
        threshold = np.float32(1.0 - appearance.cloud_cover)
        cloud = np.clip((density - threshold) * 4.0, 0.0, 1.0) * np.clip(up[..., 0] * 8.0, 0.0, 1.0)
        shade = np.float32(0.95) - np.float32(0.25) * np.clip((density - threshold) * 2.0, 0.0, 1.0)
        sky = sky + (shade[..., None] - sky) * cloud[..., None]
    return sky


def render_panorama(
    scene,
    center,
    height,
    width,
    vertical_fov=None,
    appearance=Appearance(),
    camera_height=CAMERA_HEIGHT,
    max_distance=MAX_DISTANCE,
    return_depth=False,
):
    """360-degree north-aligned equirectangular panorama ray-cast over the height field.

    Args:
      scene: ``Scene`` covering ``max_distance`` metres around ``center``.
      center: (east, north) of the camera, metres.
      height, width: panorama size, pixels.
      vertical_fov: degrees, centred on the horizon; None: ``default_vertical_fov``.
      appearance: ``Appearance`` (sun, sky, clouds, fog, colour, blur, noise).
      camera_height: metres above the ground.
      max_distance: metres a ray travels before it counts as reaching the sky / far haze.
      return_depth: also return the distance seen by each pixel.

    Returns:
      uint8 [height, width, 3], RGB; with ``return_depth`` also float32 [height, width],
      horizontal distance in metres to what the pixel sees, ``inf`` for sky and far haze.
    """
    if vertical_fov is None:
        vertical_fov = default_vertical_fov(height, width)
    azimuth = np.deg2rad(360.0 * (np.arange(width) + 0.5) / width - 180.0)
    elevation = np.deg2rad(vertical_fov / 2 - (np.arange(height) + 0.5) * vertical_fov / height)
    distance = _ray_distances(scene.cell_size, max_distance)
    east = center[0] + np.sin(azimuth)[:, None] * distance
    north = center[1] + np.cos(azimuth)[:, None] * distance
    cell = scene.cell_index(east, north)  # [width, samples]
    top = scene.height.ravel()[cell]
    # Rays looking down pass under tree canopies (but not their trunks); rays looking up
    # from the camera height meet canopies as solid.
    overhang = scene.overhang.ravel()[cell] > 0
    solid = np.where(overhang, np.float32(0), top)
    slope = np.tan(elevation)
    up = elevation >= 0
    first = np.concatenate(
        [
            _first_hits(top, distance, slope[up], camera_height),
            _first_hits(solid, distance, slope[~up], camera_height),
        ]
    )  # [height, width]
    hit = first < distance.size
    first = np.minimum(first, distance.size - 1)
    column = np.arange(width)[None, :]
    hit_cell = cell[column, first]
    hit_distance = distance[first]
    hit_top = np.where(up[:, None], top[column, first], solid[column, first])
    under = ~up[:, None] & overhang[column, first]
    ray_height = camera_height + hit_distance * slope[:, None]
    side = hit & (hit_top > 0.3) & (ray_height < hit_top - 0.2)

    direction, direct = _sun(appearance)
    ambient = np.float32(appearance.ambient)
    lit = sun_visibility(scene, appearance, stride=max(1, int(round(1.0 / scene.cell_size))))
    top_light = ambient + np.float32(direct * direction[2]) * lit.ravel()[hit_cell]
    top_light = np.where(under, np.float32(0.8) * ambient, top_light)
    albedo = np.where(
        under[..., None], scene.ground_albedo.reshape(-1, 3)[hit_cell], scene.albedo.reshape(-1, 3)[hit_cell]
    )
    wall = scene.wall_albedo.reshape(-1, 3)[hit_cell]

    # Wall normals from the gradient of the smoothed height field; facing the camera
    # where the gradient vanishes.
    smooth = cv2.blur(scene.height, (5, 5)).ravel()
    cols = scene.height.shape[1]
    grad_east = smooth[np.minimum(hit_cell + 1, smooth.size - 1)] - smooth[np.maximum(hit_cell - 1, 0)]
    grad_north = smooth[np.maximum(hit_cell - cols, 0)] - smooth[np.minimum(hit_cell + cols, smooth.size - 1)]
    norm = np.hypot(grad_east, grad_north)
    flat = norm < 1e-3
    normal_east = np.where(flat, -np.sin(azimuth)[None, :], -grad_east / np.maximum(norm, 1e-3))
    normal_north = np.where(flat, -np.cos(azimuth)[None, :], -grad_north / np.maximum(norm, 1e-3))
    facing = np.maximum(normal_east * direction[0] + normal_north * direction[1], 0.0)
    wall_light = np.float32(0.9) * ambient + np.float32(direct) * facing.astype(np.float32)

    # Windows: storeys of FLOOR_HEIGHT, bays 3 m wide along the wall.
    hit_east = center[0] + np.sin(azimuth)[None, :] * hit_distance
    hit_north = center[1] + np.cos(azimuth)[None, :] * hit_distance
    along = hit_east * -normal_north + hit_north * normal_east
    storey = np.mod(ray_height / FLOOR_HEIGHT, 1.0)
    bay = np.mod(along / 3.0, 1.0)
    windows = (
        side
        & (scene.material.ravel()[hit_cell] == Material.BUILDING)
        & (storey > 0.3)
        & (storey < 0.75)
        & (bay > 0.25)
        & (bay < 0.75)
        & (ray_height > 1.0)
        & (ray_height < hit_top - 1.0)
    )
    glass = np.float32(0.12) + np.float32(0.3) * np.asarray(appearance.sky_horizon, np.float32)
    wall = np.where(windows[..., None], glass, wall)

    image = np.where(side[..., None], wall * wall_light[..., None], albedo * top_light[..., None])
    fog = np.exp(-hit_distance / appearance.fog_distance).astype(np.float32)[..., None]
    haze = np.asarray(appearance.sky_horizon, np.float32) * np.float32(0.95)
    image = image * fog + haze * (1 - fog)
    rng = np.random.default_rng([appearance.seed, 2])
    far = np.broadcast_to(haze, image.shape).copy()
    far[up] = _sky(azimuth, elevation[up], appearance, rng)
    image = np.where(hit[..., None], image, far).astype(np.float32)
    result = _finish(image, appearance, rng)
    if return_depth:
        return result, np.where(hit, hit_distance, np.inf).astype(np.float32)
    return result


def default_cell_size(aerial_size, aerial_extent):
    """Raster cell size for a pair, metres: 0.5, coarser (up to 1.0) for coarse aerial tiles.

    Finer aerial tiles (CVUSA's 0.23 m, raw CVACT's 0.12 m per pixel) are bilinear
    enlargements of the 0.5 m raster: about the resolution the network sees after resizing
    to 256 x 256, at a fraction of the cost.
    """
    return float(np.clip(aerial_extent / aerial_size, 0.5, 1.0))


def render_pair(
    world,
    center,
    rng,
    aerial_size,
    aerial_extent,
    ground_height,
    ground_width,
    vertical_fov=None,
    cell_size=None,
):
    """The aerial tile and the ground panorama of one location, each with its own look.

    Args:
      world: ``CityWorld``.
      center: (east, north) of the camera, metres.
      rng: numpy Generator; draws the two ``Appearance``s (so the pair is a function of it).
      aerial_size: aerial side, pixels.
      aerial_extent: aerial side, metres.
      ground_height, ground_width: panorama size, pixels.
      vertical_fov: panorama vertical field of view, degrees; None: square pixels.
      cell_size: raster cell, metres; None: ``default_cell_size``.

    Returns:
      (aerial uint8 [aerial_size, aerial_size, 3], ground uint8 [ground_height,
      ground_width, 3]), both RGB.
    """
    if cell_size is None:
        cell_size = default_cell_size(aerial_size, aerial_extent)
    half_extent = max(MAX_DISTANCE, aerial_extent / 2) + 8.0
    scene = world.scene(center, half_extent, cell_size)
    aerial = render_aerial(scene, center, aerial_size, aerial_extent, Appearance.random(rng, "aerial"))
    ground = render_panorama(
        scene, center, ground_height, ground_width, vertical_fov, Appearance.random(rng, "ground")
    )
    return aerial, ground
