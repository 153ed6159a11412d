"""Runs over many inputs: ``arasfsr upscale``, ``restore`` and ``align``, and :mod:`arasfsr.distributed`.

A run plans one output per input and checks what is cheap to check for all of them before
any work: the paths, the outputs (clashes, existing files) and each image's header (size
and mode, nothing decoded). Then it decodes, renders and writes one input (or one batch)
at a time, so memory does not grow with the number of inputs.

An input that fails stops the run with exit status 2, or with ``--continue-on-error`` is
recorded, listed on stderr and in ``--report FILE.json``, and the run ends with exit
status 3 (:data:`EXIT_PARTIAL`). Every output is written atomically, the main output of an
input last, so an output that exists is finished: ``--skip-existing`` leaves those inputs
and so finishes a run that was killed; an output another run writes while this one works
is left too (the main output is never replaced without ``--overwrite``).

The report is written as soon as the run is planned (replacing a previous run's), and
again however the run ends: finished, nothing left to do, stopped by a failure, Ctrl-C,
SIGTERM or SIGHUP; its ``state`` says which.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from .errors import ArasfsrError, InputError, OutputExists, known_problem
from .paths import PathIndex, same_file

if TYPE_CHECKING:
    from PIL import Image

    from .api import Scale, Upscaler

EXIT_PARTIAL = 3  # the exit status of a run that went on past failed inputs (--continue-on-error)
OK, FAILED, SKIPPED, NOT_RUN = "ok", "failed", "skipped", "not run"
_OPEN_RUNS: list[FolderRun] = []  # runs whose report is written but not yet final


@dataclass
class Item:
    """One input, its main output and what became of it."""

    src: Path
    dst: Path
    status: str = NOT_RUN
    message: str = ""
    key: tuple = ()  # inputs with equal keys (input and output sizes) may share a forward pass

    def to_json(self) -> dict:
        return {"input": str(self.src), "output": str(self.dst), "status": self.status, "message": self.message}


def collect_sources(inputs: list[str], recursive: bool = False, exclude: Path | None = None,
                    unreadable: list[tuple[Path, Path, str]] | None = None) -> list[tuple[Path, Path]]:
    """``(file, relative path)`` of each input image: a file named directly is its own name,
    an image in a named folder is relative to that folder. Folders are read sorted, hidden
    files and folders left out; ``recursive`` walks sub-folders (not ``exclude``, the output
    folder, nor links to folders).

    A folder that cannot be read is refused; with ``unreadable`` (a list) a sub-folder that
    cannot be read is appended to it as ``(folder, relative path, why)`` instead and the
    rest is collected (``--continue-on-error`` lists it as failed)."""
    from .imageio import IMAGE_SUFFIXES, input_path_problem

    skip = exclude
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            before = len(unreadable) if unreadable is not None else 0
            inside = _images_under(path, recursive, skip, unreadable)
            if not inside and (unreadable is None or len(unreadable) == before):
                where = "its sub-folders" if recursive else "it (--recursive also reads sub-folders)"
                raise InputError(f"{path}: no images in {where}; looked for {', '.join(sorted(IMAGE_SUFFIXES))}")
            found.extend(inside)
        elif (problem := input_path_problem(path)) is None:
            found.append((path, Path(path.name)))
        else:
            raise InputError(f"{path}: {problem}")
    return found


def _images_under(folder: Path, recursive: bool, skip: Path | None,
                  unreadable: list[tuple[Path, Path, str]] | None = None) -> list[tuple[Path, Path]]:
    from .imageio import image_files

    found = []

    def cannot_read(exc: OSError) -> None:
        where = Path(exc.filename or folder)
        why = f"cannot read this folder ({exc.strerror or exc}); its images are not in the run"
        if unreadable is None or where == folder:
            raise InputError(f"{where}: {why}" + ("" if unreadable is not None or where == folder
                                                   else "; --continue-on-error goes on without it"))
        unreadable.append((where, where.relative_to(folder), why))

    for root, dirs, _ in os.walk(folder, onerror=cannot_read):
        try:
            found += [(f, f.relative_to(folder)) for f in image_files(root, skip_hidden=True)]
        except OSError as exc:  # listed by os.walk, then unreadable (permissions changed meanwhile)
            exc.filename = exc.filename or root
            cannot_read(exc)
        if not recursive:
            break
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (skip and same_file(Path(root, d), skip)))
    return found


def plan_items(sources: list[tuple[Path, Path]], output: Path | None, out_dir: Path | None,
               overwrite: bool = False, skip_existing: bool | None = False,
               outputs: Callable[[Path], list[Path]] = lambda dst: [dst], share: tuple[int, int] = (0, 1)) -> list[Item]:
    """One :class:`Item` per ``(file, relative path)`` from :func:`collect_sources`: its path
    ``dst`` is ``-o`` or ``out_dir/RELATIVE.png``, and ``outputs(dst)`` the files the input
    will write, the first written last (it marks the input done).

    Refuses clashes between outputs, an output over its input and (without ``overwrite``
    or ``skip_existing``) outputs that exist. With ``skip_existing`` an input whose first
    output exists is skipped; the other outputs of an input that was not finished are
    replaced (``None``: the command has no such option). ``share = (rank, world)`` keeps every world-th input from rank (torchrun):
    clashes are checked among all inputs, the outputs that exist among this share.
    """
    from .imageio import check_output_dir, check_output_name, check_output_path

    if output is not None:
        if len(sources) != 1:
            raise InputError(f"-o takes one input image, got {len(sources)}; use --out-dir")
        check_output_dir(output.parent)
        targets = [output]
    else:
        check_output_dir(out_dir)
        targets = [out_dir / rel.with_suffix(".png") for _, rel in sources]
    # Paths compared by the file they name (paths.PathIndex), not by their text: a bind mount, a
    # hard link or another case of a name on a case-insensitive file system is one file.
    writer = PathIndex()
    for (src, _), dst in zip(sources, targets):
        for path in outputs(dst):
            other = writer.get(path)
            if other is not None:
                raise InputError(f"{path}: two outputs would be written to this file (from {other.name} and "
                                 f"{src.name}); rename an input or write them to separate folders")
            writer.add(path, src)
    for src, _ in sources:
        owner = writer.get(src)
        if owner is not None:
            what = ("output would replace its input" if owner == src
                    else f"{owner.name}'s output would replace this input")
            raise InputError(f"{src}: {what}")
    rank, world = share
    items = []
    for (src, _), dst in list(zip(sources, targets))[rank::world]:
        check_output_path(dst, overwrite=True)  # a file name of a known format, not a folder
        for path in outputs(dst)[1:]:
            check_output_name(path)  # side outputs' names fit the file system, before any work
        item = Item(src, dst)
        if skip_existing and os.path.lexists(outputs(dst)[0]):
            item.status, item.message = SKIPPED, "its output exists"
        elif not (overwrite or skip_existing):
            for path in outputs(dst):
                if os.path.lexists(path):
                    hint = "" if skip_existing is None else ", or --skip-existing to keep it and do the other inputs"
                    raise InputError(f"{path}: exists; pass --overwrite to replace it{hint}")
        items.append(item)
    return items


def torchrun_share() -> tuple[int, int]:
    """``(rank, world size)`` under ``torchrun``, whose ranks take every WORLD_SIZE-th input
    from RANK (as ``eval`` shares faces); ``(0, 1)`` when run alone."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1
    from .evaluation.runner import dist_info

    return dist_info()


def rank_device(device: str) -> str:
    """Under ``torchrun``, ``cuda`` is each rank's own GPU: ``cuda:LOCAL_RANK``."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def unreadable_items(unreadable: list[tuple[Path, Path, str]], out_dir: Path | None) -> list[Item]:
    """Failed items for the sub-folders :func:`collect_sources` could not read."""
    return [Item(folder, (out_dir or Path(".")) / rel, FAILED, f"{folder}: {why}") for folder, rel, why in unreadable]


@dataclass
class UpscaleSettings:
    """What ``upscale`` does to each input (picklable, for Ray's workers)."""

    scale: Scale | None = None
    size: tuple[int, int] | None = None
    overwrite: bool = False
    uncertainty: bool = False  # also NAME_uncertainty.png/.npy (written before NAME)
    skip_existing: bool = False  # an output that appears meanwhile (another run's): skip its input


@dataclass
class FolderRun:
    """The items of one run and how failures are treated: raised (the run stops with exit
    status 2) or, with ``keep_going``, recorded and listed."""

    items: list[Item]
    keep_going: bool = False
    report: Path | None = None
    command: str = "upscale"
    created: list[Path] = field(default_factory=list)  # folders this run made (removed if left empty)
    progress: object = None
    skip_existing: bool = False  # an output that appears during the run skips its input
    state: str = "planned"  # planned, running, finished, stopped (by a failure) or interrupted (a signal)
    error: str = ""  # what stopped the run

    @property
    def pending(self) -> list[Item]:
        return [item for item in self.items if item.status == NOT_RUN]

    def check_report_path(self) -> None:
        """Refuse a --report path that cannot be written, before any work; then write the
        report of the planned run (a previous run's report never stays behind)."""
        from .imageio import check_output_dir

        if self.report is None:
            return
        if self.report.is_dir():
            raise InputError(f"--report {self.report}: is a folder; give a file name such as report.json")
        if any(same_file(self.report, p) for item in self.items for p in (item.src, item.dst)):
            raise InputError(f"--report {self.report}: is an input or an output of this run")
        check_output_dir(self.report.parent)  # a missing folder is made when the report is written
        self.write_report()
        _OPEN_RUNS.append(self)
        from .entry import ON_INTERRUPT

        if report_interrupted not in ON_INTERRUPT:
            ON_INTERRUPT.append(report_interrupted)

    def check(self, probe: Callable[[Item], None]) -> None:
        """``probe`` each pending item before any work (headers, sizes): the cheap failures first."""
        with self.reporting():
            for item in self.pending:
                with self.attempt([item]):
                    probe(item)

    @contextmanager
    def attempt(self, items: list[Item]) -> Iterator[None]:
        """Work on ``items``: a user's or the machine's problem marks them failed (or stops
        the run); anything else is a bug and passes through. With ``skip_existing`` an
        output that another process wrote meanwhile skips its input."""
        try:
            yield
        except OutputExists as exc:
            if not self.skip_existing:
                self.fail(items, str(exc))
                return
            for item in items:
                item.status, item.message = SKIPPED, f"its output {exc.path} appeared during the run (another run?)"
        except Exception as exc:
            message = known_problem(exc)
            if message is None:
                raise
            if not isinstance(exc, ArasfsrError) and len(items) == 1 and not message.startswith(str(items[0].src)):
                message = f"{items[0].src}: {message}"
            self.fail(items, message)

    def fail(self, items: list[Item], message: str) -> None:
        for item in items:
            item.status, item.message = FAILED, message
        if not self.keep_going:
            written = sum(item.status == OK for item in self.items)
            done = f"; {written} of {len(self.items)} outputs were written" if written else ""
            raise InputError(f"{message}{done}")
        if self.progress is not None:  # the failures are listed at the end
            self.progress.set_postfix(failed=sum(item.status == FAILED for item in self.items), refresh=False)

    def say(self, text: str) -> None:
        """A note on stderr, between the lines of the progress bar."""
        from tqdm import tqdm

        tqdm.write(f"arasfsr: {text}", file=sys.stderr)

    def tell(self, text: str) -> None:
        """A result on stdout, between the lines of the progress bar."""
        from tqdm import tqdm

        tqdm.write(text, file=sys.stdout)

    def read(self, item: Item, rgb: bool = True) -> Image.Image:
        """``item``'s image decoded (:func:`arasfsr.imageio.read_image`), its notes said."""
        from . import imageio

        img, notes = imageio.read_image(item.src, rgb=rgb)
        for text in notes:
            self.say(f"{item.src}: {text}")
        return img

    def done(self, item: Item) -> None:
        item.status = OK

    def make_parent(self, path: Path) -> None:
        """Create ``path``'s folder (a sub-folder of --out-dir under --recursive), remembering
        what was created."""
        from .imageio import make_folder

        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()][::-1]
        if missing:
            make_folder(path.parent)
            self.created += missing

    def sweep(self) -> None:
        """Remove what killed runs left: their temporary files in our output folders."""
        from .atomic import remove_stale_parts

        for folder in sorted({item.dst.parent for item in self.items}):
            remove_stale_parts(folder)

    def start(self, out_dir: Path) -> None:
        """Before the work: ``out_dir`` made and probed (what is made is removed again if the
        run leaves it empty, see :meth:`running`), and killed runs' temporary files swept."""
        from .imageio import make_output_dir

        self.created = make_output_dir(out_dir)
        self.sweep()

    @contextmanager
    def reporting(self) -> Iterator[None]:
        """A stage of the run: SIGTERM and SIGHUP stop it like Ctrl-C, and however it stops
        the report says so (a problem writing the report does not hide the first problem)."""
        from .atomic import Terminated, signals_raise

        try:
            with signals_raise():
                yield
        except BaseException as exc:
            if self.state in ("planned", "running"):
                self.state = "interrupted" if isinstance(exc, (KeyboardInterrupt, Terminated)) else "stopped"
                self.error = "interrupted" if self.state == "interrupted" else (known_problem(exc) or repr(exc))
                try:
                    self.write_report()
                except ArasfsrError as report_problem:
                    self.say(str(report_problem))
            raise

    @contextmanager
    def running(self, unit: str = "img") -> Iterator[FolderRun]:
        """The work: a progress bar, and at the end (however it ends) the report written and
        the folders this run created removed if they are empty."""
        from tqdm import tqdm

        from .imageio import remove_empty_dirs

        todo = len(self.pending)
        self.progress = tqdm(total=todo, desc=self.command, unit=unit, disable=todo < 2, file=sys.stderr)
        self.state = "running"
        try:
            with self.reporting():
                yield self
        finally:
            self.progress.close()
            if "WORLD_SIZE" not in os.environ:  # another rank may be about to write into them
                remove_empty_dirs(self.created)
        self.state = "finished"
        self.write_report()

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(n)

    def counts(self) -> dict[str, int]:
        return {s: sum(item.status == s for item in self.items) for s in (OK, FAILED, SKIPPED, NOT_RUN)}

    def write_report(self) -> None:
        """The report (``--report``) as the run stands, atomically; a failure to write it is
        an InputError naming it (a full disk), not a bug."""
        from .atomic import atomic_write_text
        from .errors import one_line

        if self.report is None:
            return
        from .imageio import make_folder

        counts = self.counts()
        data = {"command": self.command, "state": self.state, **({"error": self.error} if self.error else {}),
                "inputs": len(self.items), **{k.replace(" ", "_"): v for k, v in counts.items()},
                "items": [item.to_json() for item in self.items]}
        if self.state not in ("planned", "running") and self in _OPEN_RUNS:
            _OPEN_RUNS.remove(self)
        try:
            make_folder(self.report.parent)
            atomic_write_text(self.report, json.dumps(data, indent=1) + "\n")
        except OSError as exc:
            raise InputError(f"--report {self.report}: cannot write the report ({exc.strerror or one_line(exc)})"
                             ) from None

    def finish(self, out_dir: Path | None, what: str = "images", extra: Callable[[Item], list[Path]] | None = None) -> int:
        """Say what was done (stdout) and what failed (stderr); the exit status. A run with
        nothing left to do writes its report here. ``extra(item)``: the files an input
        adds beside its output, printed after it for a single input."""
        if self.state == "planned":
            self.state = "finished"
            self.write_report()
        counts = self.counts()
        if len(self.items) == 1 and counts[OK]:
            print(self.items[0].dst)
            for path in extra(self.items[0]) if extra else []:
                print(path)
        else:
            parts = [f"wrote {counts[OK]} {what}" + (f" to {out_dir}" if out_dir is not None else "")]
            if counts[SKIPPED]:
                parts.append(f"skipped {counts[SKIPPED]} whose output exists")
            if counts[FAILED]:
                parts.append(f"{counts[FAILED]} failed")
            print(", ".join(parts))
        return self.list_failures()

    def list_failures(self) -> int:
        """The failed inputs on stderr, if any; the exit status."""
        counts = self.counts()
        if not counts[FAILED]:
            return 0
        where = f" (the report is {self.report})" if self.report is not None else ""
        print(f"arasfsr: {counts[FAILED]} of {len(self.items)} inputs failed{where}:", file=sys.stderr)
        for item in self.items:
            if item.status == FAILED:
                print(f"  {_with_path(item)}", file=sys.stderr)
        return EXIT_PARTIAL


def _with_path(item: Item) -> str:
    return item.message if item.message.startswith(str(item.src)) else f"{item.src}: {item.message}"


def report_interrupted() -> None:
    """The reports of the runs a signal stopped between their stages: state "interrupted"."""
    for run in list(_OPEN_RUNS):
        run.state, run.error = "interrupted", "interrupted"
        try:
            run.write_report()
        except ArasfsrError:
            pass


def refused_report(report: Path | None, command: str, message: str) -> None:
    """The report of a run refused while it was planned: written where a report of ours
    (or nothing) is, so that a previous run's report does not stand for this one; nothing
    else is replaced and no folder is made."""
    if report is None or not report.parent.is_dir() or report.is_dir():
        return
    if report.exists():
        try:
            old = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return
        if not (isinstance(old, dict) and {"command", "items"} <= set(old)):
            return  # not a report of ours: never replaced
    run = FolderRun([], report=report, command=command, state="refused", error=message)
    try:
        run.write_report()
    except InputError:
        pass  # the refusal itself is the message


def rank_report(report: Path | None, rank: int, world: int) -> Path | None:
    """Each rank's own report file under torchrun: NAME.rankR.json."""
    if report is None or world == 1:
        return report
    return report.with_name(f"{report.stem}.rank{rank}{report.suffix}")


def probe_size(item: Item, check_size: Callable[[Path, tuple[int, int]], tuple[int, int]]) -> None:
    """Read ``item``'s header and check its output size; its batch key is (input, output) size."""
    from .imageio import probe_image

    in_size, _ = probe_image(item.src)
    item.key = (in_size, check_size(item.src, in_size))


def batches(items: Iterable[Item], batch_size: int) -> Iterator[list[Item]]:
    """``items`` in lists of at most ``batch_size`` that share their key, in input order
    when batch_size is 1."""
    items = list(items)
    if batch_size == 1:
        yield from ([item] for item in items)
        return
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        groups.setdefault(item.key, []).append(item)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            yield members[start:start + batch_size]


PROGRESS_PIXELS = 2**20  # a run of one input shows its render's progress from this many output pixels


@contextmanager
def pixel_progress(run: FolderRun, items: list[Item]) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over the output pixels of the render of a run's only input, when the
    output is large (minutes on a CPU); shown from the first chunk done, so a render that
    needs no model (bicubic) shows none."""
    from tqdm import tqdm

    total = sum(item.key[1][0] * item.key[1][1] for item in items if item.key)
    if len(run.items) > 1 or total < PROGRESS_PIXELS:
        yield None
        return
    bar = None

    def advance(pixels: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="render", unit="px", unit_scale=True, file=sys.stderr, leave=False)
        bar.update(pixels)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.close()


def upscale_items(model: Upscaler, items: list[Item], settings: UpscaleSettings, run: FolderRun) -> None:
    """Decode, super-resolve (the images of one size in one forward pass) and write ``items``;
    what fails is marked failed (or stops the run). Nothing outlives the call: at most
    ``len(items)`` images are held at a time."""
    from .imageio import output_notes, write_image
    from .runtime import is_downscale
    from .uncertainty import write_uncertainty

    images, ready = [], []
    for item in items:
        with run.attempt([item]):
            img = run.read(item, rgb=False)
            for text in output_notes(img, item.dst):
                run.say(f"{item.src}: {text}")
            if item.key and is_downscale(item.key[0][::-1], item.key[1][::-1]):
                (w, h), (out_w, out_h) = item.key
                run.say(f"{item.src}: {out_w}x{out_h} is smaller than the input ({w}x{h}): a plain bicubic "
                        "downscale, without the model (it adds no detail when shrinking)")
            images.append(img)
            ready.append(item)
    outs: list = []
    if ready:
        with run.attempt(ready), pixel_progress(run, ready) as progress:
            outs = model.upscale_many(images, scale=settings.scale, size=settings.size,
                                      uncertainty=settings.uncertainty, progress=progress)
    del images
    # The side outputs of an input whose main output is missing are an unfinished run's: replaced.
    replace_side = settings.overwrite or settings.skip_existing
    for item, out in zip(ready, outs):
        with run.attempt([item]):
            run.make_parent(item.dst)
            if settings.uncertainty:
                out, umap = out
                write_uncertainty(umap, item.dst, overwrite=replace_side)
            write_image(out, item.dst, overwrite=settings.overwrite)
            run.done(item)
