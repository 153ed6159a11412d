"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class ArasfsrError(Exception):
    """A problem with the user's input or environment, not a bug."""


class InputError(ArasfsrError):
    """An input path, image or size that cannot be used."""


class ModelError(ArasfsrError):
    """A model name, checkpoint or config that cannot be loaded."""
