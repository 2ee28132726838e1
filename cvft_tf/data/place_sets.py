"""A place recognition benchmark as evaluated: query and database images, and each query's positives.

The readers of the layouts (``place_lists``, ``pittsburgh``, ``msls``, ``salad_lists``) each
return a :class:`PlaceSet`; ``cvft-eval-place`` embeds its images and scores it.
"""

import dataclasses
import os

import numpy as np
from scipy.spatial import cKDTree


class PlaceSetError(ValueError):
    """A benchmark file that cannot be read, or that does not fit its images; names the file."""


@dataclasses.dataclass
class PlaceSet:
    """Queries and database of a benchmark, in evaluation order.

    Attributes:
        layout: the layout's name (``lists``, ``pittsburgh``, ``msls``, ``salad_npy``).
        query_root, database_root: folders the names are relative to.
        query_names: ``[num_queries]`` image names (``/`` separators) of the evaluated queries.
        database_names: ``[num_database]`` image names.
        positives: per query, int64 indices into ``database_names`` (may be empty: a miss).
        excluded_queries: query images of the layout left out because they have no positive
            (MSLS and SALAD's MSLS-val lists evaluate only queries with one).
    """

    layout: str
    query_root: str
    database_root: str
    query_names: list
    database_names: list
    positives: list
    excluded_queries: int = 0

    @property
    def query_paths(self):
        return [os.path.join(self.query_root, name) for name in self.query_names]

    @property
    def database_paths(self):
        return [os.path.join(self.database_root, name) for name in self.database_names]

    @property
    def queries_without_positives(self):
        """Evaluated queries without any positive (each counts as a miss)."""
        return sum(1 for p in self.positives if len(p) == 0)


def radius_positives(query_utm, database_utm, radius):
    """Database images within ``radius`` metres of each query (distance <= radius, as NetVLAD's
    ``closePosition.m`` and scikit-learn's ``radius_neighbors`` in the MSLS code; CVACT's geo
    recall in ``evaluation.recall`` keeps its original's strict ``<``).

    Args:
        query_utm: ``[num_queries, 2]`` easting, northing in metres.
        database_utm: ``[num_database, 2]``.
        radius: metres, > 0.

    Returns:
        list of ``num_queries`` sorted int64 arrays of database indices.
    """
    query_utm = np.asarray(query_utm, np.float64).reshape(-1, 2)
    database_utm = np.asarray(database_utm, np.float64).reshape(-1, 2)
    if not len(database_utm):
        return [np.zeros(0, np.int64) for _ in query_utm]
    found = cKDTree(database_utm).query_ball_point(query_utm, r=radius, return_sorted=True)
    return [np.asarray(indices, np.int64) for indices in found]
