"""Aggregators: a branch's feature maps -> its descriptor. One module per aggregator.

An aggregator is a ``parts.Part`` called as ``aggregator(features, branch, map_size)``:

- ``features``: the backbone's dict of symbolic tensors (``backbones``);
- ``branch``: ``"ground"`` or ``"aerial"`` (the branches are not shared; the transport
  aggregator moves the ground map only);
- ``map_size``: ``(h, w)`` the feature maps of both branches must have before they are
  flattened, or None for the branch's own size (the model builds the aerial branch with
  its configured map size first and gives the ground branch the aerial map's size).

It returns a dict of named outputs that holds ``"descriptor"`` ``[B, D]`` (unit norm) and,
for aggregators that keep a spatial map, ``"feature_map"`` ``[B, h, w, c]``. A map
aggregator for a map matcher (``azimuth_map.AzimuthMap``) returns the map itself as its
``"descriptor"`` ``[B, h, w, c]`` and keeps its own size. A new
aggregator is a new module here plus a line in ``models.presets.PRESETS``.
"""
