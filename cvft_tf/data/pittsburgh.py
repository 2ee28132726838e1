"""The ``pittsburgh`` layout: Pitts30k / Pitts250k as released with NetVLAD (Arandjelovic et al.,
CVPR 2016), a MATLAB ``dbStruct`` per split (``pitts30k_test.mat``, ``pitts250k_test.mat``, ...).

``dbStruct`` is a 1x1 struct with the fields of NetVLAD's ``datasets/dbBase.m``, in this order
in the released files: ``whichSet``, ``dbImageFns`` (a cell column of database image names),
``utmDb`` (2 x numImages, easting and northing in metres), ``qImageFns``, ``utmQ``
(2 x numQueries), ``numImages``, ``numQueries``, ``posDistThr`` (25), ``posDistSqThr`` (625),
``nonTrivPosDistSqThr`` (100, training only). Some converted copies name the cells
``dbImage`` / ``qImage``; both are read (by name, not by position).

Images are relative to the dataset root: database names such as ``000/000000_pitch1_yaw1.jpg``
under ``ROOT/``, query names under ``ROOT/queries_real/`` (the Pittsburgh250k download; the
layout of pytorch-NetVlad and of SALAD's ``pitts30k_test_qImages.npy``).

The positives of a query are the database images within ``posDistThr`` metres (distance <=
threshold, as ``closePosition.m``). Every query is evaluated; one without positives counts as a
miss (NetVLAD's ``testCore.m`` averages over all queries).
"""

import os
import zlib

import numpy as np
import scipy.io

from cvft_tf.data.place_sets import PlaceSet, PlaceSetError, radius_positives

QUERY_FOLDER = "queries_real"
"""Folder of the query images under the dataset root."""


def read_pittsburgh(mat_path, root, positive_radius=None):
    """The :class:`PlaceSet` of a NetVLAD ``dbStruct`` file.

    Args:
        mat_path: the ``.mat`` file.
        root: dataset root (database images under it, queries under ``root/queries_real``).
        positive_radius: metres; None: the file's ``posDistThr``.

    Raises:
        FileNotFoundError: ``mat_path`` is missing.
        PlaceSetError: a file that is no MATLAB file, has no ``dbStruct``, lacks a field, or
            whose fields disagree (names vs coordinates vs counts).
    """
    struct = _load_db_struct(mat_path)
    database_names = _names(struct, ("dbImageFns", "dbImage"), mat_path)
    query_names = _names(struct, ("qImageFns", "qImage"), mat_path)
    database_utm = _utm(struct, "utmDb", len(database_names), mat_path)
    query_utm = _utm(struct, "utmQ", len(query_names), mat_path)
    for field, names in (("numImages", database_names), ("numQueries", query_names)):
        declared = int(_scalar(struct, field, mat_path)) if field in struct.dtype.names else len(names)
        if declared != len(names):
            raise PlaceSetError(f"{mat_path}: dbStruct.{field} is {declared}, but it lists {len(names)} images")
    if positive_radius is None:
        positive_radius = _scalar(struct, "posDistThr", mat_path)
    positives = radius_positives(query_utm, database_utm, positive_radius)
    return PlaceSet("pittsburgh", os.path.join(root, QUERY_FOLDER), root, query_names, database_names, positives)


def _load_db_struct(path):
    """The ``dbStruct`` of a MATLAB file, as a 0-d structured array (``squeeze_me``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dbStruct file {path!r} not found")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True)
    except (ValueError, TypeError, OSError, NotImplementedError, zlib.error) as error:
        raise PlaceSetError(f"{path} is not a readable MATLAB (v5) .mat file ({error})") from None
    struct = mat.get("dbStruct")
    if struct is None or struct.dtype.names is None:
        raise PlaceSetError(f"{path} has no dbStruct struct (variables: {sorted(k for k in mat if k[0] != '_')})")
    return struct


def _field(struct, names, path):
    """The first of ``names`` that ``struct`` has."""
    for name in names:
        if name in struct.dtype.names:
            return struct[name].item()
    raise PlaceSetError(f"{path}: dbStruct has no field {' or '.join(names)} (fields: {list(struct.dtype.names)})")


def _names(struct, field_names, path):
    """A cell array of image names as a list of ``str``."""
    names = np.atleast_1d(_field(struct, field_names, path))
    if not all(isinstance(name, str) for name in names):
        raise PlaceSetError(f"{path}: dbStruct.{field_names[0]} must be a cell array of image names")
    return [str(name).strip() for name in names]


def _utm(struct, field, count, path):
    """A 2 x count coordinate field as ``[count, 2]`` float64 (an N x 2 one is accepted too)."""
    value = np.asarray(_field(struct, (field,), path))
    if value.dtype.kind not in "iuf":
        raise PlaceSetError(f"{path}: dbStruct.{field} must be numeric, got {value.dtype}")
    if value.size == 2 * count and value.ndim <= 2 and (value.ndim < 2 or value.shape[0] == 2):
        return value.astype(np.float64).reshape(2, count).T
    if value.shape == (count, 2):
        return value.astype(np.float64)
    raise PlaceSetError(f"{path}: dbStruct.{field} has shape {value.shape}, expected 2 x {count}")


def _scalar(struct, field, path):
    value = np.asarray(_field(struct, (field,), path))
    if value.size != 1 or value.dtype.kind not in "iuf":
        raise PlaceSetError(f"{path}: dbStruct.{field} must be one number, got {value!r}")
    return float(value)
