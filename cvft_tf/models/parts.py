"""The parts a cross-view branch is composed of, and how settings reach them.

A branch is ``backbone`` (images -> feature maps) then ``aggregator`` (feature maps -> a
descriptor); a ``matcher`` scores a batch of descriptor pairs into the loss. Each part is a
small dataclass whose fields are its settings: ``get_config`` / ``from_config`` save and
rebuild it (Keras serialization), and ``fields_of`` tells which settings a part takes, so a
flat or per-part set of settings is routed to the part that owns each one
(``cross_view.CrossViewModel``). A field with ``metadata={"saved": False}`` (a weights file
to load at build time) is not part of the saved config.
"""

import dataclasses


def unsaved(default=None):
    """A dataclass field used when the part is built, not saved (e.g. a weights file)."""
    return dataclasses.field(default=default, metadata={"saved": False})


class Part:
    """Base of backbones, aggregators and matchers (subclasses are dataclasses)."""

    def get_config(self):
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.metadata.get("saved", True)
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def fields_of(part_class):
    """The setting names a part class takes (its dataclass fields)."""
    return {field.name for field in dataclasses.fields(part_class)}
