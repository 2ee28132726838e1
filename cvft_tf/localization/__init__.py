"""Localizing a ground panorama on a geo-referenced aerial map.

``geomap``: maps and their geo-reference (pixel <-> map coordinates <-> latitude/longitude);
``windows``: the trained aerial window slid over a map; ``tiles``: a folder of aerial tiles
with a CSV of their centres, each tile one window; ``encoders``: a model's two branches
and its fingerprint; ``search``: FAISS exact and IVF-PQ search; ``index``: the resumable,
extensible index of a map's windows (``cvft-index``); ``localize``: top-K positions, errors
in metres (``cvft-localize``); ``heatmap``: the scores drawn over the map. FAISS and rasterio
(the ``localize`` extra) are imported where they are used.
"""
