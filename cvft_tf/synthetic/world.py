"""A procedural city-like 2.5D world: height field, albedo and materials, numpy only.

The world is a street grid rotated by a seed-dependent angle. Roads of varied width (with
lane markings and zebra crossings) and sidewalks bound blocks; a block is built-up (lots
with buildings of varied footprint, height, roof and wall colour, some with a taller
tower, courtyards between them), a park, a paved plaza, a parking lot with cars, or an
open dirt lot. Trees stand in parks, courtyards, plazas and along sidewalks.

Nothing is stored: every property of a road, block, lot, tree or car is a hash of the
world seed and the thing's integer grid index, so the world is unbounded, any window of it
is computed on demand in vectorised numpy, and the same point always gets the same
surface whatever window it is computed in.

Coordinates are metres in a local east/north frame (east = x, north = y). A ``Scene`` is
a north-up raster of the surface around a point: row 0 is the northern edge, column 0
the western one. Heights are metres above the (flat) ground; albedos are RGB in [0, 1].
``albedo`` is the colour seen from above, ``wall_albedo`` that of a cell's vertical faces
(building walls, tree canopy or trunk seen from the side, car bodies). A tree canopy is
the one overhang of this 2.5D world: ``overhang`` gives the height of its underside and
``ground_albedo`` the ground below it, so that rays looking down from street level pass
under the canopy and only meet the trunk.
"""

import dataclasses
import enum

import numpy as np


class Material(enum.IntEnum):
    """Surface class of a raster cell (``Scene.material``, uint8)."""

    ROAD = 1
    MARKING = 2
    SIDEWALK = 3
    GRASS = 4
    DIRT = 5
    PAVED = 6
    BUILDING = 7
    TREE = 8
    CAR = 9


OPEN_MATERIALS = (
    Material.ROAD,
    Material.MARKING,
    Material.SIDEWALK,
    Material.GRASS,
    Material.DIRT,
    Material.PAVED,
)
"""Materials a camera may stand on (flat, street level)."""

FLOOR_HEIGHT = 3.2
"""Storey height in metres (building heights and the window pattern of walls)."""

CAR_HEIGHT = 1.5
"""Height of a parked car, metres."""

# Block kinds.
_BUILT, _PARK, _PLAZA, _PARKING, _OPEN_LOT = range(5)
_BLOCK_KIND_CDF = np.cumsum([0.60, 0.13, 0.09, 0.09, 0.09])

_ROAD_WIDTHS = np.array([8.0, 9.0, 10.0, 12.0, 12.0, 14.0, 18.0, 24.0])
_LINE_JITTER = 0.15  # street-line offset, fraction of the pitch
_MAX_LOTS = 4  # lots per block side
_TREE_PITCH = 7.0  # metres between tree lattice sites
_PARKING_SPACE = (2.6, 5.0)  # width, depth in metres
_PARKING_ROW = 16.0  # two rows of spaces and an aisle

_ROOF_COLOURS = np.array(
    [
        [0.55, 0.55, 0.53],
        [0.35, 0.35, 0.36],
        [0.62, 0.40, 0.30],
        [0.76, 0.75, 0.71],
        [0.42, 0.45, 0.40],
        [0.50, 0.45, 0.38],
        [0.28, 0.30, 0.34],
        [0.66, 0.64, 0.60],
    ],
    np.float32,
)
_WALL_COLOURS = np.array(
    [
        [0.72, 0.68, 0.60],
        [0.55, 0.30, 0.24],
        [0.82, 0.81, 0.78],
        [0.42, 0.50, 0.60],
        [0.60, 0.58, 0.55],
        [0.72, 0.60, 0.42],
        [0.35, 0.38, 0.42],
        [0.64, 0.48, 0.40],
    ],
    np.float32,
)
_CAR_COLOURS = np.array(
    [
        [0.85, 0.85, 0.85],
        [0.08, 0.08, 0.09],
        [0.55, 0.56, 0.58],
        [0.60, 0.10, 0.08],
        [0.12, 0.20, 0.45],
        [0.30, 0.32, 0.30],
        [0.80, 0.75, 0.60],
    ],
    np.float32,
)
_ASPHALT = 0.26
_SIDEWALK = np.array([0.60, 0.59, 0.56], np.float32)
_GRASS = np.array([0.26, 0.42, 0.18], np.float32)
_DRY_GRASS = np.array([0.46, 0.48, 0.26], np.float32)
_DIRT = np.array([0.50, 0.42, 0.31], np.float32)
_PAVED = np.array([0.64, 0.61, 0.56], np.float32)
_WHITE_PAINT = np.array([0.84, 0.84, 0.80], np.float32)
_YELLOW_PAINT = np.array([0.80, 0.64, 0.18], np.float32)
_CANOPY = np.array([0.16, 0.32, 0.11], np.float32)
_TRUNK = np.array([0.30, 0.22, 0.15], np.float32)
_TRUNK_RADIUS = 0.35

# Hash salts, one per random property.
(
    _S_LINE_POS,
    _S_LINE_WIDTH,
    _S_LINE_WALK,
    _S_LINE_TINT,
    _S_BLOCK_KIND,
    _S_BLOCK_LOT,
    _S_BLOCK_CROSSING,
    _S_LOT_PRESENT,
    _S_LOT_FLOORS,
    _S_LOT_TALL,
    _S_LOT_TOWER,
    _S_LOT_INSET,
    _S_LOT_MARGIN,
    _S_LOT_ROOF,
    _S_LOT_WALL,
    _S_LOT_TINT,
    _S_LOT_YARD,
    _S_TREE,
    _S_CAR,
) = range(1, 20)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(z):
    """splitmix64 finaliser on a uint64 array."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def hash_uniform(seed, salt, *keys):
    """Uniform numbers in [0, 1), a pure function of a seed, a salt and integer keys.

    Args:
      seed: int, the world seed.
      salt: int, which property is drawn (distinct salts give independent numbers).
      *keys: int arrays (broadcast together), e.g. grid indices; negative values allowed.

    Returns:
      float64 array of the broadcast shape of ``keys``.
    """
    with np.errstate(over="ignore"):
        h = np.full((), (int(seed) * 0x2545F4914F6CDD1D + int(salt)) % 2**64, np.uint64)
        h = _mix(h)
        for key in keys:
            key = np.asarray(key, np.int64).astype(np.uint64)
            h = _mix(h ^ (key * _GOLDEN + np.uint64(0x632BE59BD9B4E019)))
        return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _compact(first, second):
    """Maps integer pairs to rows of a small table of the distinct pairs.

    Returns:
      (index, table_first, table_second): ``index`` has the shape of the inputs and
      ``table_first[index] == first``; the table is a dense rectangle of the pairs' range
      when that is small, else the distinct pairs only.
    """
    if first.size == 0:
        return first, first, second
    lo_a, lo_b = first.min(), second.min()
    span_a = first.max() - lo_a + 1
    span_b = second.max() - lo_b + 1
    key = (first - lo_a) * span_b + (second - lo_b)
    if span_a * span_b <= max(4096, 2 * first.size):
        table = np.arange(span_a * span_b)
        index = key
    else:
        table, index = np.unique(key, return_inverse=True)
        index = index.reshape(first.shape)
    return index, lo_a + table // span_b, lo_b + table % span_b


class _Noise:
    """Smooth value noise from a seeded 256x256 lattice (tiles every 256 * scale metres)."""

    def __init__(self, rng):
        table = rng.random((256, 256), dtype=np.float32)
        self._table = np.pad(table, ((0, 1), (0, 1)), mode="wrap").ravel()  # 257 x 257

    def __call__(self, x, y, scale):
        """Noise in [0, 1] at points (float32 arrays, metres), feature size ``scale`` metres."""
        gx = x * np.float32(1.0 / scale)
        gy = y * np.float32(1.0 / scale)
        x0 = np.floor(gx)
        y0 = np.floor(gy)
        fx = gx - x0
        fy = gy - y0
        fx = fx * fx * (3.0 - 2.0 * fx)
        fy = fy * fy * (3.0 - 2.0 * fy)
        base = (y0.astype(np.int32) & 255) * 257 + (x0.astype(np.int32) & 255)
        t = self._table
        a = t[base]
        b = t[base + 1]
        top = a + (b - a) * fx
        c = t[base + 257]
        d = t[base + 258]
        bottom = c + (d - c) * fx
        return top + (bottom - top) * fy


@dataclasses.dataclass
class Surface:
    """The world's surface at a set of points (all arrays share the points' shape).

    Attributes:
      height: float32 [...], metres above the ground of the highest surface.
      albedo: float32 [..., 3], RGB in [0, 1], colour seen from above.
      wall_albedo: float32 [..., 3], RGB in [0, 1], colour of the vertical faces.
      material: uint8 [...], ``Material`` codes.
      overhang: float32 [...], metres; where positive, the top layer (a tree canopy)
        floats that high above open ground that a low ray can see below it.
      ground_albedo: float32 [..., 3], RGB of the ground under an overhang (elsewhere
        equal to ``albedo``).
    """

    height: np.ndarray
    albedo: np.ndarray
    wall_albedo: np.ndarray
    material: np.ndarray
    overhang: np.ndarray
    ground_albedo: np.ndarray


@dataclasses.dataclass
class Scene(Surface):
    """A north-up raster of the surface: the input of the renderers.

    Cell ``(row, col)`` is centred at ``east = origin[0] + (col + 0.5) * cell_size``,
    ``north = origin[1] - (row + 0.5) * cell_size``; ``origin`` is the north-west corner.
    The ``Surface`` arrays are [rows, cols] (and [rows, cols, 3] for colours).

    Attributes:
      origin: (east, north) of the north-west corner, metres.
      cell_size: metres per cell.
    """

    origin: tuple = (0.0, 0.0)
    cell_size: float = 0.5

    @classmethod
    def flat(cls, center=(0.0, 0.0), half_extent=64.0, cell_size=0.5, albedo=(0.45, 0.44, 0.40)):
        """An empty, flat paved square of side ``2 * half_extent`` metres around ``center``."""
        size = int(round(2 * half_extent / cell_size))
        colour = np.broadcast_to(np.asarray(albedo, np.float32), (size, size, 3))
        return cls(
            height=np.zeros((size, size), np.float32),
            albedo=colour.copy(),
            wall_albedo=colour.copy(),
            material=np.full((size, size), Material.PAVED, np.uint8),
            overhang=np.zeros((size, size), np.float32),
            ground_albedo=colour.copy(),
            origin=(center[0] - half_extent, center[1] + half_extent),
            cell_size=float(cell_size),
        )

    def cell_centers(self):
        """(east, north) float64 arrays [rows, cols] of the cell centres, metres."""
        return _cell_centers(self.origin, self.height.shape, self.cell_size)

    def cell_index(self, east, north):
        """Flat raster index of the cell holding each point (clamped to the raster edge)."""
        rows, cols = self.height.shape
        col = np.floor((np.asarray(east) - self.origin[0]) / self.cell_size).astype(np.int64)
        row = np.floor((self.origin[1] - np.asarray(north)) / self.cell_size).astype(np.int64)
        return np.clip(row, 0, rows - 1) * cols + np.clip(col, 0, cols - 1)

    def add_box(self, east, north, height, roof=(0.6, 0.6, 0.6), wall=(0.7, 0.65, 0.6),
                material=Material.BUILDING):
        """Puts a solid axis-aligned block on the raster (in place); returns the scene.

        Args:
          east: (min, max) eastings of the box, metres.
          north: (min, max) northings of the box, metres.
          height: metres above the ground.
          roof: RGB albedo of the top; wall: RGB albedo of the sides.
          material: ``Material`` code of the covered cells.
        """
        centers_east, centers_north = self.cell_centers()
        inside = (
            (centers_east >= east[0])
            & (centers_east < east[1])
            & (centers_north >= north[0])
            & (centers_north < north[1])
        )
        self.height[inside] = np.maximum(self.height[inside], height)
        self.albedo[inside] = roof
        self.wall_albedo[inside] = wall
        self.material[inside] = material
        self.overhang[inside] = 0.0
        self.ground_albedo[inside] = roof
        return self


class CityWorld:
    """An unbounded procedural city, deterministic from ``seed``.

    Args:
      seed: int; the same seed gives the same world.

    The street grid is rotated by ``angle`` (radians, counter-clockwise from east) and has
    pitches ``pitch`` (metres between street centre lines along its two axes).
    """

    def __init__(self, seed):
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 0x5EED])
        self.angle = float(rng.uniform(0.0, np.pi / 2))
        self.pitch = (float(rng.uniform(70.0, 110.0)), float(rng.uniform(70.0, 110.0)))
        self.centre_paint = _YELLOW_PAINT if rng.random() < 0.5 else _WHITE_PAINT
        self._noise = _Noise(rng)

    # -- the street grid ------------------------------------------------------------

    def _to_grid(self, east, north):
        c, s = np.cos(self.angle), np.sin(self.angle)
        return c * east + s * north, -s * east + c * north

    def _lines(self, axis, k):
        """Street lines ``k`` (int array) of one axis: centre, road width, sidewalk, tint."""
        pitch = self.pitch[axis]
        salt = 100 * axis
        jitter = hash_uniform(self.seed, salt + _S_LINE_POS, k) - 0.5
        position = k * pitch + 2.0 * _LINE_JITTER * pitch * jitter
        width_pick = hash_uniform(self.seed, salt + _S_LINE_WIDTH, k)
        width = _ROAD_WIDTHS[(width_pick * len(_ROAD_WIDTHS)).astype(np.int64)]
        walk = 1.5 + 2.5 * hash_uniform(self.seed, salt + _S_LINE_WALK, k)
        tint = _ASPHALT * (0.8 + 0.4 * hash_uniform(self.seed, salt + _S_LINE_TINT, k))
        return position, width, walk, tint

    def _axis(self, axis, coord):
        """Where points lie between the street lines of one axis.

        Args:
          axis: 0 for lines of constant u, 1 for lines of constant v.
          coord: float64 [n], u or v of the points.

        Returns:
          dict of [n] arrays: ``block`` (int64 index of the line below), float32 ``lo`` /
          ``hi`` (metres to the lower / upper centre line), ``w_lo`` / ``w_hi`` (their road
          widths), ``s_lo`` / ``s_hi`` (sidewalk widths), ``tint_lo`` / ``tint_hi``.
        """
        k0 = np.floor(coord / self.pitch[axis]).astype(np.int64)
        first = int(k0.min()) - 1
        position, width, walk, tint = self._lines(axis, np.arange(first, int(k0.max()) + 3))
        i = k0 - first
        i = i - (coord < position[i]) + (coord >= position[i + 1])
        f32 = np.float32
        return {
            "block": i + first,
            "lo": (coord - position[i]).astype(f32),
            "hi": (position[i + 1] - coord).astype(f32),
            "w_lo": width[i].astype(f32),
            "w_hi": width[i + 1].astype(f32),
            "s_lo": walk[i].astype(f32),
            "s_hi": walk[i + 1].astype(f32),
            "tint_lo": tint[i].astype(f32),
            "tint_hi": tint[i + 1].astype(f32),
        }

    def _blocks(self, block_u, block_v):
        """Per-block table for blocks (block_u, block_v) (int arrays [b]).

        Returns:
          dict of [b] arrays: ``kind``, ``a_u`` / ``a_v`` (metres from the lower street
          centre line to the block interior), ``lots_u`` / ``lots_v`` (lot counts),
          ``lot_u`` / ``lot_v`` (lot sizes, metres), ``district`` (height factor).
        """
        seed = self.seed
        kind_pick = hash_uniform(seed, _S_BLOCK_KIND, block_u, block_v)
        kind = np.minimum(np.searchsorted(_BLOCK_KIND_CDF, kind_pick, side="right"), _OPEN_LOT)
        target = 18.0 + 24.0 * hash_uniform(seed, _S_BLOCK_LOT, block_u, block_v)
        table = {"kind": kind}
        for axis, index in ((0, block_u), (1, block_v)):
            lo_pos, lo_width, lo_walk, _ = self._lines(axis, index)
            hi_pos, hi_width, hi_walk, _ = self._lines(axis, index + 1)
            start = lo_width / 2 + lo_walk
            size = hi_pos - hi_width / 2 - hi_walk - lo_pos - start
            count = np.clip(np.round(size / target), 1, _MAX_LOTS)
            name = "uv"[axis]
            table["a_" + name] = start
            table["lots_" + name] = count
            table["lot_" + name] = size / count
        district = self._noise(
            (block_u * self.pitch[0] + 3.0e3).astype(np.float32),
            (block_v * self.pitch[1] - 7.0e3).astype(np.float32),
            700.0,
        )
        table["district"] = 0.35 + 1.9 * district.astype(np.float64) ** 2
        return table

    def _lots(self, block_u, block_v, blocks):
        """Per-lot table, rows ``(block * 4 + lot_u) * 4 + lot_v``: float32 [b * 16, 19].

        Columns: 4 margins (low-u, high-u, low-v, high-v; metres from the lot edge to the
        building), building present (0/1), base height, tower depth (metres inside the
        footprint where the tower starts; inf without tower), tower height, roof RGB,
        tower roof RGB, wall RGB, lawn (0/1) for a lot without building.
        """
        seed = self.seed
        lots = _MAX_LOTS * _MAX_LOTS
        block = np.repeat(np.arange(block_u.size), lots)
        lot_u = np.tile(np.arange(lots) // _MAX_LOTS, block_u.size)
        lot_v = np.tile(np.arange(lots) % _MAX_LOTS, block_u.size)
        keys = (block_u[block], block_v[block], lot_u, lot_v)

        def draw(salt, *extra):
            return hash_uniform(seed, salt, *keys, *extra)

        count_u, count_v = blocks["lots_u"][block], blocks["lots_v"][block]
        street = np.stack([lot_u == 0, lot_u == count_u - 1, lot_v == 0, lot_v == count_v - 1])
        pick = draw(_S_LOT_MARGIN, np.arange(4)[:, None])  # [4, lots]
        margins = np.where(street, 0.5 + 4.0 * pick, np.where(pick < 0.4, 0.0, 0.8 + 2.2 * pick))
        footprint_u = blocks["lot_u"][block] - margins[0] - margins[1]
        footprint_v = blocks["lot_v"][block] - margins[2] - margins[3]
        smallest = np.minimum(footprint_u, footprint_v)
        present = (draw(_S_LOT_PRESENT) < 0.88) & (smallest >= 4.0)

        district = blocks["district"][block]
        floors = 1.0 + np.floor(draw(_S_LOT_FLOORS) ** 1.3 * 7.0 * district)
        tall_pick = draw(_S_LOT_TALL)
        floors += np.where(tall_pick < 0.04 * district, 12.0 + 300.0 * tall_pick, 0.0)
        base = floors * FLOOR_HEIGHT + 0.8
        tower_pick = draw(_S_LOT_TOWER)
        inset = 0.18 + 0.17 * draw(_S_LOT_INSET)
        has_tower = (tower_pick < 0.35) & (smallest >= 12.0)
        tower_depth = np.where(has_tower, inset * smallest, np.inf)
        tower_height = base * (1.3 + 0.6 * tower_pick / 0.35)

        roof_pick = (draw(_S_LOT_ROOF, np.arange(2)[:, None]) * len(_ROOF_COLOURS)).astype(np.int64)
        wall_pick = (draw(_S_LOT_WALL) * len(_WALL_COLOURS)).astype(np.int64)
        tint = (0.88 + 0.24 * draw(_S_LOT_TINT, np.arange(3)[:, None])).T
        lawn = draw(_S_LOT_YARD) < 0.6
        columns = [
            margins.T,
            present[:, None],
            base[:, None],
            tower_depth[:, None],
            tower_height[:, None],
            _ROOF_COLOURS[roof_pick[0]] * tint,
            _ROOF_COLOURS[roof_pick[1]] * tint,
            _WALL_COLOURS[wall_pick] * tint,
            lawn[:, None],
        ]
        return np.concatenate(columns, axis=1).astype(np.float32)

    # -- surface --------------------------------------------------------------------

    def evaluate(self, east, north):
        """The surface at points.

        Args:
          east, north: float arrays of the same shape, metres.

        Returns:
          ``Surface`` with arrays of that shape.
        """
        east = np.asarray(east, np.float64)
        north = np.asarray(north, np.float64)
        shape = east.shape
        u, v = self._to_grid(east.ravel(), north.ravel())
        surface = self._layout(u, v)
        self._add_trees(u, v, surface)
        return Surface(
            height=surface["height"].reshape(shape),
            albedo=_channels_last(surface["albedo"], shape),
            wall_albedo=_channels_last(surface["wall"], shape),
            material=surface["material"].reshape(shape),
            overhang=surface["overhang"].reshape(shape),
            ground_albedo=_channels_last(surface["ground"], shape),
        )

    def scene(self, center, half_extent, cell_size=0.5):
        """The north-up raster of a square window.

        Args:
          center: (east, north) of the window centre, metres.
          half_extent: half the side of the window, metres.
          cell_size: metres per cell.

        Returns:
          ``Scene`` of ``round(2 * half_extent / cell_size)`` cells a side.
        """
        size = int(round(2 * half_extent / cell_size))
        origin = (center[0] - size * cell_size / 2, center[1] + size * cell_size / 2)
        surface = self.evaluate(*_cell_centers(origin, (size, size), cell_size))
        return Scene(**dataclasses.asdict(surface), origin=origin, cell_size=float(cell_size))

    def _layout(self, u, v):
        """Roads, sidewalks, blocks, buildings and cars (no trees) at grid points u, v [n].

        Returns:
          dict of float32 ``height`` [n], ``albedo`` / ``wall`` [3, n] (channels first),
          uint8 ``material`` [n] and float32 ``tree_prob`` [n] (chance that a tree rooted
          here stands).
        """
        au = self._axis(0, u)
        av = self._axis(1, v)
        u = u.astype(np.float32)
        v = v.astype(np.float32)
        coarse = self._noise(u, v, 6.0)
        fine = self._noise(u + 517.0, v + 211.0, 0.9)
        broad = self._noise(u + 91.0, v - 37.0, 25.0)
        texture = (0.8 + 0.3 * coarse) * (0.9 + 0.2 * fine)

        near_lo_u = au["lo"] < au["w_lo"] / 2
        near_lo_v = av["lo"] < av["w_lo"] / 2
        road_u = near_lo_u | (au["hi"] < au["w_hi"] / 2)
        road_v = near_lo_v | (av["hi"] < av["w_hi"] / 2)
        band_u = (au["lo"] < au["w_lo"] / 2 + au["s_lo"]) | (au["hi"] < au["w_hi"] / 2 + au["s_hi"])
        band_v = (av["lo"] < av["w_lo"] / 2 + av["s_lo"]) | (av["hi"] < av["w_hi"] / 2 + av["s_hi"])
        road = road_u | road_v
        walk = ~road & (band_u | band_v)

        block, block_u, block_v = _compact(au["block"], av["block"])
        blocks = self._blocks(block_u, block_v)
        kind = np.where(road | walk, -1, blocks["kind"][block])
        s = au["lo"] - blocks["a_u"][block].astype(np.float32)  # metres into the block
        t = av["lo"] - blocks["a_v"][block].astype(np.float32)

        # Roads: asphalt tinted per street; centre, lane and zebra markings.
        tint = np.where(
            road_u,
            np.where(near_lo_u, au["tint_lo"], au["tint_hi"]),
            np.where(near_lo_v, av["tint_lo"], av["tint_hi"]),
        )
        asphalt = tint * (0.8 + 0.35 * coarse) * (0.92 + 0.16 * fine)
        crossing = (hash_uniform(self.seed, _S_BLOCK_CROSSING, block_u, block_v) < 0.7)[block]
        centre_paint = np.zeros(u.shape, bool)
        white_paint = np.zeros(u.shape, bool)
        for axis, near_lo, road_a, road_b, band_b, along, across in (
            (au, near_lo_u, road_u, road_v, band_v, v, u),
            (av, near_lo_v, road_v, road_u, band_u, u, v),
        ):
            centre = np.where(near_lo, axis["lo"], axis["hi"])
            width = np.where(near_lo, axis["w_lo"], axis["w_hi"])
            only = road_a & ~road_b
            dashed = (width >= 10) & (width < 18) & (centre < 0.1) & (_frac(along / 6.0) < 0.5)
            double = (width >= 18) & (np.abs(centre - 0.25) < 0.1)
            lanes = (width >= 14) & (np.abs(centre - width / 4) < 0.08) & (_frac(along / 9.0) < 0.35)
            zebra = band_b & crossing & (_frac(across) < 0.5)
            centre_paint |= only & (dashed | double)
            white_paint |= only & (lanes | zebra)

        built = self._buildings(s, t, block, block_u, block_v, blocks, fine, coarse)
        cars = self._parking(s, t, au["block"], av["block"], kind == _PARKING)
        building = (kind == _BUILT) & built["building"]
        yard = (kind == _BUILT) & ~built["building"]
        dry = broad > 0.55

        # Classes from the lowest priority to the highest: (mask, albedo [3, n] or [3, 1],
        # material, chance of a tree rooted there).
        slabs = (_frac(u / 1.5) < 0.06) | (_frac(v / 1.5) < 0.06)
        tiles = (_frac(u / 3.0) < 0.04) | (_frac(v / 3.0) < 0.04)
        open_ground = np.where(dry, _DRY_GRASS[:, None], _DIRT[:, None]) * texture
        paving = _PAVED[:, None] * ((0.88 + 0.15 * fine) * np.where(tiles, 0.8, 1.0))
        lawn = _GRASS[:, None] * texture
        park = (_GRASS[:, None] + (_DRY_GRASS - _GRASS)[:, None] * (0.6 * broad * broad)) * texture
        sidewalk = _SIDEWALK[:, None] * ((0.9 + 0.12 * fine) * np.where(slabs, 0.85, 1.0))
        layers = [
            (kind == _OPEN_LOT, open_ground, Material.DIRT, 0.08),
            (yard | (kind == _PLAZA), paving, Material.PAVED, 0.12),
            (yard & built["lawn"], lawn, Material.GRASS, 0.3),
            (kind == _PARK, park, Material.GRASS, 0.5),
            (walk, sidewalk, Material.SIDEWALK, 0.3),
            (road | (kind == _PARKING), asphalt, Material.ROAD, 0.0),
            (centre_paint, self.centre_paint[:, None], Material.MARKING, 0.0),
            (cars["stripe"] | white_paint, _WHITE_PAINT[:, None], Material.MARKING, 0.0),
            (cars["car"], cars["top"], Material.CAR, 0.0),
            (building, built["roof"], Material.BUILDING, 0.0),
        ]
        albedo = np.zeros((3, u.size), np.float32)
        material = np.zeros(u.size, np.uint8)
        tree_prob = np.zeros(u.size, np.float32)
        for mask, colour, code, chance in layers:
            np.copyto(albedo, colour, where=mask)
            material[mask] = code
            tree_prob[mask] = chance
        material[(material == Material.DIRT) & dry] = Material.GRASS
        height = np.where(cars["car"], np.float32(CAR_HEIGHT), np.float32(0))
        height = np.where(building, built["height"], height)
        wall = albedo.copy()
        np.copyto(wall, cars["body"], where=cars["car"])
        np.copyto(wall, built["wall"], where=building)
        return {
            "height": height,
            "albedo": albedo,
            "wall": wall,
            "material": material,
            "tree_prob": tree_prob,
        }

    def _buildings(self, s, t, block, block_u, block_v, blocks, fine, coarse):
        """Buildings of the lots (where the block is built-up); arrays [n] or [3, n].

        Returns:
          dict: ``building`` (bool, inside a footprint), ``height`` (metres), ``roof`` and
          ``wall`` (RGB albedo), ``lawn`` (bool, an unbuilt lot is grass, else paved).
        """
        lot_table = self._lots(block_u, block_v, blocks).T  # [19, lots]
        f32 = np.float32
        width_u = blocks["lot_u"].astype(f32)[block]
        width_v = blocks["lot_v"].astype(f32)[block]
        count_u = blocks["lots_u"].astype(f32)[block]
        count_v = blocks["lots_v"].astype(f32)[block]
        lot_u = np.clip(np.floor(s / width_u), 0, count_u - 1)
        lot_v = np.clip(np.floor(t / width_v), 0, count_v - 1)
        lot = (block * _MAX_LOTS + lot_u.astype(np.int64)) * _MAX_LOTS + lot_v.astype(np.int64)
        row = np.take(lot_table, lot, axis=1)  # [19, n]
        into_u = s - lot_u * width_u
        into_v = t - lot_v * width_v
        depth = np.minimum(
            np.minimum(into_u - row[0], width_u - into_u - row[1]),
            np.minimum(into_v - row[2], width_v - into_v - row[3]),
        )
        tower = depth >= row[6]
        edge = (depth < 0.6) | (tower & (depth < row[6] + 0.5))
        texture = (0.92 + 0.12 * fine) * (0.95 + 0.1 * coarse) * np.where(edge, 0.78, 1.0)
        return {
            "building": (row[4] > 0) & (depth >= 0),
            "height": np.where(tower, row[7], row[5]),
            "roof": np.where(tower, row[11:14], row[8:11]) * texture,
            "wall": row[14:17],
            "lawn": row[17] > 0,
        }

    def _parking(self, s, t, block_u, block_v, parking):
        """Painted bays and parked cars in parking blocks; arrays [n] or [3, n].

        Returns:
          dict: ``stripe`` and ``car`` (bool), ``top`` (RGB of the car seen from above,
          windscreen darker) and ``body`` (RGB of its sides).
        """
        n = s.size
        result = {
            "stripe": np.zeros(n, bool),
            "car": np.zeros(n, bool),
            "top": np.zeros((3, n), np.float32),
            "body": np.zeros((3, n), np.float32),
        }
        where = np.flatnonzero(parking)
        if where.size == 0:
            return result
        s, t = s[where], t[where]
        space_w, space_d = _PARKING_SPACE
        row_t = t % _PARKING_ROW
        in_bay = (row_t < space_d) | (row_t >= _PARKING_ROW - space_d)
        bay_t = np.where(row_t < space_d, row_t, _PARKING_ROW - row_t)
        bay_s = s % space_w
        half_row = np.floor(t / (_PARKING_ROW / 2)).astype(np.int64)
        bay = np.floor(s / space_w).astype(np.int64)
        index, key_block, key_bay = _compact(
            block_u[where] * 65536 + block_v[where], half_row * 4096 + bay
        )
        pick = hash_uniform(self.seed, _S_CAR, key_block, key_bay)[index]
        car = (
            in_bay
            & (pick < 0.65)
            & (bay_s > 0.35)
            & (bay_s < space_w - 0.35)
            & (bay_t > 0.4)
            & (bay_t < space_d - 0.3)
        )
        palette = (pick / 0.65 * len(_CAR_COLOURS)).astype(np.int64) % len(_CAR_COLOURS)
        colour = _CAR_COLOURS[palette].T
        windscreen = np.abs(bay_t - space_d * 0.45) < 0.5
        result["stripe"][where] = in_bay & (bay_s < 0.12)
        result["car"][where] = car
        result["top"][:, where] = colour * np.where(windscreen, 0.35, 1.0)
        result["body"][:, where] = colour
        return result

    def _add_trees(self, u, v, surface):
        """Trees on a jittered lattice where the ground at their trunk allows (in place)."""
        cell_u = np.floor(u / _TREE_PITCH).astype(np.int64)
        cell_v = np.floor(v / _TREE_PITCH).astype(np.int64)
        index, key_u, key_v = _compact(cell_u, cell_v)
        pick = hash_uniform(self.seed, _S_TREE, key_u, key_v, np.arange(6)[:, None])
        radius = 1.6 + 1.6 * pick[0]
        slack = _TREE_PITCH / 2 - radius
        centre_u = (key_u + 0.5) * _TREE_PITCH + (2 * pick[1] - 1) * slack
        centre_v = (key_v + 0.5) * _TREE_PITCH + (2 * pick[2] - 1) * slack
        ground = self._layout(centre_u, centre_v)
        present = (pick[4] < ground["tree_prob"]) & (ground["height"] == 0)
        du = (u - centre_u[index]).astype(np.float32)
        dv = (v - centre_v[index]).astype(np.float32)
        table = np.stack([radius, 4.5 + 8.0 * pick[3], present, 0.75 + 0.5 * pick[5]]).astype(np.float32)
        row = np.take(table, index, axis=1)
        closeness = 1.0 - (du * du + dv * dv) / (row[0] * row[0])
        canopy = (row[2] > 0) & (closeness > 0)
        profile = np.sqrt(np.maximum(closeness, 0.0))
        canopy_height = row[1] * (0.4 + 0.6 * profile)
        canopy &= canopy_height > surface["height"]
        trunk = canopy & (closeness > 1.0 - (_TRUNK_RADIUS / row[0]) ** 2)
        leaves = self._noise(u.astype(np.float32) * 1.3 + 71.0, v.astype(np.float32) * 1.3 - 13.0, 0.8)
        colour = _CANOPY[:, None] * row[3]
        surface["ground"] = surface["albedo"].copy()
        np.copyto(surface["albedo"], colour * ((0.65 + 0.35 * profile) * (0.75 + 0.5 * leaves)), where=canopy)
        np.copyto(surface["wall"], colour * (0.8 + 0.4 * leaves), where=canopy)
        np.copyto(surface["wall"], _TRUNK[:, None], where=trunk)
        surface["height"] = np.where(canopy, canopy_height, surface["height"])
        surface["overhang"] = np.where(canopy & ~trunk, row[1] * 0.35, np.float32(0))
        surface["material"][canopy] = Material.TREE


def _frac(x):
    """Fractional part ``x - floor(x)`` (faster than ``x % 1`` in numpy)."""
    return x - np.floor(x)


def _channels_last(colour, shape):
    """[3, n] float32 colours -> [*shape, 3], clipped to [0, 1]."""
    return np.ascontiguousarray(np.clip(colour, 0.0, 1.0).T).reshape(shape + (3,))


def _cell_centers(origin, shape, cell_size):
    """(east, north) float64 arrays ``shape`` of the centres of a north-up raster's cells."""
    rows, cols = shape
    east = origin[0] + (np.arange(cols) + 0.5) * cell_size
    north = origin[1] - (np.arange(rows) + 0.5) * cell_size
    return np.meshgrid(east, north)


def sample_locations(world, count, spacing, origin=(0.0, 0.0), salt=0, clearance=2.0, margin=0.15):
    """Camera positions on open ground, one per cell of a jittered grid.

    Cells of ``spacing`` metres are visited row by row (a square of ``ceil(sqrt(count))``
    cells a side from ``origin``, growing northwards when cells have no open ground); each
    cell draws candidate points away from its borders and keeps the first on a road (else
    the first on other open ground) with no building, tree or car within ``clearance``.

    Args:
      world: ``CityWorld``.
      count: number of positions.
      spacing: metres between cell centres; neighbours are ``spacing`` apart on average.
      origin: (east, north) of the south-west corner of the sampled square, metres.
      salt: int; different salts give different candidates.
      clearance: metres of open ground required around a position.
      margin: share of a cell's side kept free along each border, so that two positions
        are at least ``2 * margin * spacing`` apart.

    Returns:
      float64 array [count, 2] of (east, north), metres.
    """
    candidates = 24
    side = max(1, int(np.ceil(np.sqrt(count))))
    angles = np.arange(8) * np.pi / 4
    ring = np.concatenate([np.zeros((1, 2)), clearance * np.stack([np.cos(angles), np.sin(angles)], -1)])
    open_codes = np.array([int(m) for m in OPEN_MATERIALS])
    found = np.zeros((0, 2))
    cell = 0
    while len(found) < count:
        cells = np.arange(cell, cell + min(512, max(64, 2 * (count - len(found)))))
        cell = int(cells[-1]) + 1
        pick = hash_uniform(
            world.seed, 7919 + salt, cells[:, None], np.arange(candidates), np.arange(2)[:, None, None]
        )
        pick = margin + (1 - 2 * margin) * pick
        east = origin[0] + ((cells % side)[:, None] + pick[0]) * spacing  # [cells, candidates]
        north = origin[1] + ((cells // side)[:, None] + pick[1]) * spacing
        probe = world.evaluate(east[..., None] + ring[:, 0], north[..., None] + ring[:, 1])
        clear = (probe.height.max(axis=-1) == 0) & np.isin(probe.material, open_codes).all(axis=-1)
        on_road = clear & (probe.material[..., 0] == Material.ROAD)
        choice = np.where(on_road.any(axis=1), on_road.argmax(axis=1), clear.argmax(axis=1))
        rows = np.arange(cells.size)
        chosen = np.stack([east[rows, choice], north[rows, choice]], axis=-1)[clear.any(axis=1)]
        found = np.concatenate([found, chosen[: count - len(found)]])
    return found
