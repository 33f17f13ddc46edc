"""mmzsq's exception classes.

Every :class:`UserError` is a mistake in the user's input (a config, a
checkpoint, a data folder).  The command-line tools print it as one line,
``error: <message>``, and exit non-zero, so its message must say what is
wrong *and* name the fix.
"""


class UserError(Exception):
    """A mistake in the user's input; the tools print it as one line."""


class ConfigError(UserError, ValueError):
    """A bad value in a config (bit-width, class count, checkpoint)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is unreadable or does not fit the model."""


class SetMismatchError(UserError, ValueError):
    """A synthetic set that is corrupt, incomplete or made for another
    model."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss term became NaN/Inf (training or synthesis stops)."""


class SynthesisInterrupted(KeyboardInterrupt):
    """Ctrl-C during Stage I; the message says what was kept and how to
    resume (the tools print it as one line and exit 130)."""
