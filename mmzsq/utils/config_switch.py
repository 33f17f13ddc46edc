"""Optional features switched on by a dict in a config (``None``: off)."""
from .errors import ConfigError


class ConfigSwitch:
    """A feature built from a config value: ``None`` is off, a dict with
    the class's ``KEYS`` builds it, anything else is a one-line
    :class:`ConfigError` naming ``WHERE`` (the config key) and
    ``EXAMPLE`` (a valid value)."""

    KEYS: tuple = ()
    WHERE = ''
    EXAMPLE = 'dict()'

    @classmethod
    def build(cls, cfg):
        """The feature of a config value (``None``: off)."""
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise ConfigError(f'{cls.WHERE}={cfg!r}: give a dict, e.g. '
                              f'{cls.EXAMPLE}, or None (off)')
        unknown = sorted(set(cfg) - set(cls.KEYS))
        if unknown:
            raise ConfigError(f'{cls.WHERE} has unknown keys {unknown}; use '
                              f'{", ".join(cls.KEYS)}')
        return cls(**cfg)
