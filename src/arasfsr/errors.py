"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class ArasfsrError(Exception):
    """A problem with the user's input or environment, not a bug."""


class InputError(ArasfsrError):
    """An input path, image or size that cannot be used."""


class ModelError(ArasfsrError):
    """A model name, checkpoint or config that cannot be loaded."""


class OutputExists(InputError):
    """An output file is already there and may not be replaced."""

    def __init__(self, path: object) -> None:
        super().__init__(f"{path}: exists; pass --overwrite to replace it")
        self.path = path


class SettingError(InputError):
    """A render setting (precision, chunk size, pixel limit, sampling...) that cannot be used."""


class DeviceError(ModelError):
    """A device that does not exist here or cannot run a model."""


def known_problem(exc: BaseException) -> str | None:
    """A one-line message for an exception that is the user's or the machine's problem, not a bug."""
    if isinstance(exc, ArasfsrError):
        return str(exc)
    memory = memory_problem(exc)
    if memory is not None:
        return memory
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


# Where an allocation failed says what to shrink: the encoder and what is computed once per
# input position grow with the input, the implicit decoder's passes with --chunk-size, the
# rest (the output canvas, bicubic, pasting faces back) with the output.
_INPUT_STAGES = frozenset({"encode", "project"})
_CHUNK_STAGES = frozenset({"query", "query_fast"})


def memory_problem(exc: BaseException, chunk_option: bool = True) -> str | None:
    """"out of memory; ADVICE (the allocator's whole first line)" when ``exc`` is running out of
    memory, the advice fitting where it ran out; else None. ``chunk_option``: the caller has
    the CLI's --chunk-size and --device options to advise."""
    import traceback

    text = str(exc).lower()
    if not (isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
            s in text for s in ("out of memory", "can't allocate memory", "not enough memory")))):
        return None
    stages = {frame.f_code.co_name for frame, _ in traceback.walk_tb(exc.__traceback__)}
    if stages & _INPUT_STAGES:
        advice = "the input image is too large for this machine's memory; shrink or crop it first"
    elif stages & _CHUNK_STAGES and chunk_option:
        advice = "lower --chunk-size"
    else:
        advice = "ask for a smaller output" + (" (--scale or --size)" if chunk_option else " (scale or size)")
    if "cuda" in text and chunk_option:
        advice += ", or use --device cpu"
    return f"out of memory; {advice} ({one_line(exc)})"


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
