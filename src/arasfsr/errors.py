"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class ArasfsrError(Exception):
    """A problem with the user's input or environment, not a bug."""


class InputError(ArasfsrError):
    """An input path, image or size that cannot be used."""


class ModelError(ArasfsrError):
    """A model name, checkpoint or config that cannot be loaded."""


def known_problem(exc: BaseException) -> str | None:
    """A one-line message for an exception that is the user's or the machine's problem, not a bug."""
    if isinstance(exc, (InputError, ModelError)):
        return str(exc)
    text = str(exc)
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
            s in text.lower() for s in ("out of memory", "can't allocate memory", "not enough memory"))):
        return ("out of memory; ask for a smaller output, lower --chunk-size, or use --device cpu "
                f"({one_line(exc)[:120]})")
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
