"""The ``skinanalysis`` command line (also ``python -m skinanalysis``).

    skinanalysis analyze IMAGE... [--actions a,b] [--hd] [--format json|zip] [--json]
    skinanalysis batch DIR [--out results.jsonl|.csv] [--concurrency N] [--dry-run]
                           [--retry-failed] [--partial] [--delete-after]
    skinanalysis credit [--json] [--prices]
    skinanalysis compare BEFORE AFTER [--html FILE]
    skinanalysis report results.jsonl -o report.html [--images DIR] [--masks DIR]
    skinanalysis cost ACTION...
    skinanalysis emulator [emulator flags]

analyze also takes --html FILE (the notebook view as one self-contained page)
and --out FILE (the records of --json, as JSON Lines: what compare and report
read); batch takes --save-masks DIR.

The key comes from --api-key or $YOUCAM_API_KEY, the host from --base-url or
$SKINANALYSIS_BASE_URL.  Exit codes: 0 everything succeeded, 1 an analysis
failed (API, engine, transport), 2 usage or validation errors only (bad
arguments, unreadable or unsuitable images), 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, TextIO

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CSV_FIELDS = ["image", "ok", "task_id", "concern", "region", "ui_score", "raw_score",
              "skin_type", "overall", "skin_age", "error_type", "error",
              "deleted", "delete_error"]


# -- helpers ---------------------------------------------------------------------

def _actions_from(args: argparse.Namespace) -> Optional[list[str]]:
    from . import actions as _actions
    if args.actions:
        return _actions.normalize(args.actions)
    return list(_actions.HD_ACTIONS) if args.hd else None


def _client(args: argparse.Namespace, **options: Any):
    from .client import Client
    return Client(args.api_key, base_url=args.base_url, version=args.api_version,
                  poll_interval=args.poll_interval, **options)


def _exit_code(outcomes: Iterable[Any]) -> int:
    from .errors import Error, ValidationError
    failures = [o for o in outcomes if isinstance(o, Error)]
    if any(not isinstance(f, ValidationError) for f in failures):
        return EXIT_FAILED
    return EXIT_USAGE if failures else EXIT_OK


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return ("%%.%df" % digits) % value
    return str(value)


def print_table(label: str, result: Any, out: TextIO) -> None:
    head = [label, "task " + (result.task_id or "?")]
    if result.overall is not None:
        head.append("overall " + _fmt(result.overall))
    if result.skin_age is not None:
        head.append("skin age " + _fmt(result.skin_age, 0))
    out.write("  ".join(head) + "\n")
    if result.zip_url:
        out.write("  zip: %s\n" % result.zip_url.split("?", 1)[0])
    if not result.scores:
        return
    width = max(len(s.concern) for s in result.scores)
    out.write("  %-*s  %-11s %4s  %6s  %s\n" % (width, "concern", "region", "ui", "raw",
                                                "skin type"))
    for s in result.scores:
        out.write("  %-*s  %-11s %4s  %6s  %s\n" % (width, s.concern, s.region,
                                                    _fmt(s.ui_score), _fmt(s.raw_score),
                                                    s.skin_type or ""))


def _result_record(label: str, outcome: Any) -> dict:
    from .errors import describe
    if isinstance(outcome, BaseException):
        return {"image": label, "ok": False, "error": describe(outcome)}
    data = outcome.to_dict()
    data.pop("raw", None)
    return {"image": label, "ok": True, "task_id": outcome.task_id, "result": data}


def _say_error(label: str, exc: BaseException) -> None:
    sys.stderr.write("%s: %s: %s\n" % (label, type(exc).__name__, exc))


# -- analyze ---------------------------------------------------------------------

def cmd_analyze(args: argparse.Namespace) -> int:
    from .errors import Error
    actions = _actions_from(args)
    failed_saves = 0
    views = []
    # with --save-masks or --html (a json result's masks are downloaded for
    # them) the task is deleted only once its masks are in hand
    later = bool(args.save_masks or args.html)
    with _client(args) as client:  # open while masks download through it
        outcomes = client.analyze_many(args.images, actions, concurrency=args.concurrency,
                                       progress=False, format=args.format, hd=args.hd,
                                       delete_after=args.delete_after and not later)
        for image, outcome in zip(args.images, outcomes):
            ok = not isinstance(outcome, BaseException)
            if args.html and ok:
                try:
                    views.append(_result_view(image, outcome))
                except Error as exc:
                    _say_error(image, exc)
                    failed_saves += 1
            if args.save_masks and ok:
                folder = Path(args.save_masks) / Path(image).stem
                try:
                    outcome.save_masks(folder)
                except Error as exc:
                    _say_error(image, exc)
                    failed_saves += 1
            if args.delete_after and later and ok:
                client._delete_result(outcome)
            if getattr(outcome, "delete_error", None) is not None:
                _say_error(image + " (delete)", outcome.delete_error)
            if args.json:
                sys.stdout.write(json.dumps(_result_record(image, outcome)) + "\n")
            elif not ok:
                _say_error(image, outcome)
            else:
                print_table(image, outcome, sys.stdout)
        if args.out:  # once deleted: the records say so
            with open(args.out, "a", encoding="utf-8") as fh:
                for image, outcome in zip(args.images, outcomes):
                    fh.write(json.dumps(_result_record(image, outcome)) + "\n")
    if args.html:
        from .view import page
        Path(args.html).write_text(page("Skin analysis", "".join(views)), encoding="utf-8")
    return EXIT_FAILED if failed_saves else _exit_code(outcomes)


def _result_view(label: str, result: Any) -> str:
    """The notebook view of one result, its masks downloaded (through the
    core) and blended over the image."""
    from .view import result_html
    if result.format == "json" and any(s.mask_urls for s in result.scores):
        result.mask_files()  # kept in the result for the composite
    return result_html(result, result._composite_data_url(), label)


# -- compare and report -------------------------------------------------------------

def load_result(spec: str) -> Any:
    """A saved result: a result zip, a .json file (a record of --out/--json,
    a Result.to_dict(), or a task-status body), or a JSON Lines file of
    records (its last successful record, or the record of one image with
    FILE#IMAGE)."""
    from .results import Result
    path, _, image = spec.partition("#")
    p = Path(path)
    data = p.read_bytes()
    if data[:4] == b"PK\x03\x04":
        return Result.from_zip(data)
    text = data.decode("utf-8")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        if "data" in doc and "status" in doc:
            return Result.from_json(text)
        if doc.get("ok") is False or ("scores" not in doc and "result" not in doc):
            raise ValueError("%s: not a successful result" % path)
        return Result.from_dict(doc)
    found = None
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if (isinstance(rec, dict) and rec.get("ok") and isinstance(rec.get("result"), dict)
                and (not image or rec.get("image") == image)):
            found = rec
    if found is None:
        raise ValueError("%s: no successful result%s" % (path, " for " + image if image else ""))
    return Result.from_dict(found)


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        before, after = load_result(args.before), load_result(args.after)
    except (OSError, ValueError) as exc:
        sys.stderr.write("skinanalysis compare: %s\n" % exc)
        return EXIT_USAGE
    cmp = before.compare(after)
    sys.stdout.write(str(cmp))
    if args.html:
        from .view import page
        Path(args.html).write_text(page("Before / after", cmp._repr_html_()),
                                   encoding="utf-8")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .report import Report
    src = Path(args.results)
    if not src.is_file():
        sys.stderr.write("skinanalysis report: %s: no such file\n" % src)
        return EXIT_USAGE
    report = Report.from_jsonl(src, images=args.images, masks=args.masks)
    report.save(args.output)
    sys.stderr.write("%s: %d image(s), %d failed, %d units\n"
                     % (args.output, len(report.entries) + len(report.failures),
                        len(report.failures), report.units))
    return EXIT_OK


# -- batch -----------------------------------------------------------------------

def list_images(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _trim_partial_line(path: Path) -> None:
    """An interrupted run may leave half a line at the end: drop it."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[:data.rfind(b"\n") + 1])


#: Failures that are the task's own final outcome: the task ended (or is
#: gone), so trying again means a new task.  Any other failure of a record
#: with a task id (polling gave up, the run was interrupted or the client
#: went away, the deadline passed, a download failed after the task
#: succeeded, an ambiguous create whose id is known) left a task that
#: exists: --retry-failed resumes it by its id instead of paying again.
FINAL_TASK_ERRORS = frozenset({"EngineError", "TaskExpiredError", "TaskTimeoutError"})


def read_records(path: Path) -> dict[str, tuple[bool, str, str]]:
    """The last record of each image in an output file (JSON Lines or CSV):
    image -> (ok, task_id or "", error type or "")."""
    if not path.exists():
        return {}
    _trim_partial_line(path)
    seen: dict[str, tuple[bool, str, str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        if path.suffix.lower() == ".csv":
            for row in csv.DictReader(fh):
                if row.get("image"):
                    seen[row["image"]] = (row.get("ok") == "true", row.get("task_id") or "",
                                          row.get("error_type") or "")
        else:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("image"), str):
                    err = rec.get("error") if isinstance(rec.get("error"), dict) else {}
                    task = rec.get("task_id") or err.get("task_id") or ""
                    seen[rec["image"]] = (bool(rec.get("ok")),
                                          task if isinstance(task, str) else "",
                                          str(err.get("type") or ""))
    return seen


def done_images(path: Path, retry_failed: bool) -> set[str]:
    """Images already in an output file (JSON Lines or CSV)."""
    return {img for img, (ok, _, _) in read_records(path).items()
            if ok or not retry_failed}


def tasks_to_resume(path: Path) -> dict[str, str]:
    """Failed images whose task exists and did not end: image -> task id
    (resumed by --retry-failed instead of creating a new task)."""
    return {img: task for img, (ok, task, kind) in read_records(path).items()
            if not ok and task and kind not in FINAL_TASK_ERRORS}


class BatchWriter:
    """Appends one record per image as it ends, flushed, so that a run can be
    resumed after an interruption."""

    def __init__(self, path: Path) -> None:
        self.csv = path.suffix.lower() == ".csv"
        new = not path.exists() or path.stat().st_size == 0
        fields = CSV_FIELDS
        if self.csv and not new:  # appending: keep the file's own columns
            with path.open(newline="", encoding="utf-8") as fh:
                fields = next(csv.reader(fh), None) or CSV_FIELDS
        self.fh = path.open("a", newline="", encoding="utf-8")
        self.writer = (csv.DictWriter(self.fh, fields, extrasaction="ignore")
                       if self.csv else None)
        if self.writer is not None and new:
            self.writer.writeheader()

    def write(self, label: str, outcome: Any) -> None:
        if self.writer is None:
            self.fh.write(json.dumps(_result_record(label, outcome)) + "\n")
        else:
            self.writer.writerows(self._rows(label, outcome))
        self.fh.flush()

    @staticmethod
    def _rows(label: str, outcome: Any) -> list[dict]:
        if isinstance(outcome, BaseException):
            return [{"image": label, "ok": "false",
                     "task_id": getattr(outcome, "task_id", None) or "",
                     "error_type": type(outcome).__name__, "error": str(outcome)}]
        base = {"image": label, "ok": "true", "task_id": outcome.task_id or "",
                "overall": _fmt(outcome.overall, 3), "skin_age": _fmt(outcome.skin_age, 0)}
        if outcome.deleted or outcome.delete_error is not None:  # --delete-after
            base["deleted"] = "true" if outcome.deleted else "false"
            base["delete_error"] = str(outcome.delete_error or "")
        rows = [dict(base, concern=s.concern, region=s.region, ui_score=_fmt(s.ui_score),
                     raw_score=_fmt(s.raw_score, 3), skin_type=s.skin_type or "")
                for s in outcome.scores]
        return rows or [base]

    def close(self) -> None:
        self.fh.close()


def _balance(args: argparse.Namespace) -> tuple[Optional[Any], Optional[BaseException]]:
    """(Credit, None), or (None, the error) when the balance cannot be read."""
    from .errors import Error
    try:
        with _client(args) as client:
            return client.credit(), None
    except Error as exc:
        return None, exc


def dry_run(folder: Path, remaining: list[Path], actions: Optional[list[str]], hd: bool,
            skipped: int, args: Optional[argparse.Namespace] = None) -> int:
    from . import actions as _actions
    from ._native import _core
    from .errors import Error
    names = _actions.normalize(actions, hd)
    units = _core.cost(names)
    min_side = _core.MIN_SIDE_HD if _actions.tier_of(names[0]) == "hd" else _core.MIN_SIDE_SD
    bad = 0
    for path in remaining:
        label = path.relative_to(folder).as_posix()
        try:
            fmt, w, h = _core.probe_image(str(path))
        except Error as exc:
            bad += 1
            print("%s: %s" % (label, exc))
            continue
        size = path.stat().st_size
        problem = ("too small (short side %d < %d)" % (min(w, h), min_side)
                   if min(w, h) < min_side else
                   "too large (%d bytes)" % size if size >= _core.MAX_FILE_SIZE else "")
        bad += bool(problem)
        print("%s: %dx%d %s%s" % (label, w, h, "PNG" if fmt == _core.IMAGE_PNG else "JPEG",
                                  ": " + problem if problem else ""))
    ok = len(remaining) - bad
    print("%d to analyse (%d already done, %d would be refused); %d units each, "
          "%d units in all at most" % (ok, skipped, bad, units, units * ok))
    if args is not None:
        credit, err = _balance(args)
        if credit is None:
            print("balance: unknown (%s: %s)" % (type(err).__name__, err))
        else:
            need = units * ok
            print("balance: %s units available%s" % (
                _fmt(credit.available, 0),
                "; enough" if credit.available >= need else
                "; short by %s: only %d of %d image(s) can be paid for (batch --partial "
                "goes that far)" % (_fmt(need - credit.available, 0),
                                    int(credit.available // units) if units else ok, ok)))
    return EXIT_USAGE if bad else EXIT_OK


def _batch_record(client: Any, writer: "BatchWriter", label: str, outcome: Any,
                  save_masks: Optional[str], delete_after: bool) -> None:
    from .errors import Error
    if save_masks and not isinstance(outcome, BaseException):
        try:
            outcome.save_masks(Path(save_masks) / Path(label).stem)
        except Error as exc:
            _say_error(label, exc)
        if delete_after:  # once its masks are saved
            client._delete_result(outcome)
    writer.write(label, outcome)


def cmd_batch(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        sys.stderr.write("skinanalysis batch: %s is not a folder\n" % folder)
        return EXIT_USAGE
    out = Path(args.out)
    images = list_images(folder, args.recursive)
    done = done_images(out, args.retry_failed)
    resume = tasks_to_resume(out) if args.retry_failed else {}
    remaining = [p for p in images if p.relative_to(folder).as_posix() not in done]
    actions = _actions_from(args)
    if args.dry_run:
        return dry_run(folder, remaining, actions, args.hd, len(images) - len(remaining),
                       args)
    if not remaining:
        sys.stderr.write("nothing to do: %d image(s), all in %s\n" % (len(images), out))
        return EXIT_OK
    from .batch import ResumeTask
    labels = [p.relative_to(folder).as_posix() for p in remaining]
    # a failed record whose task exists is resumed by its id: no new task
    items = [ResumeTask(resume[label]) if label in resume else str(p)
             for label, p in zip(labels, remaining)]
    resumed = sum(isinstance(item, ResumeTask) for item in items)
    # the balance must pay for every new task (resumed ones are not new)
    from . import actions as _actions
    from ._native import _core
    units = _core.cost(_actions.normalize(actions, args.hd))
    new = len(items) - resumed
    unpaid = 0
    credit, err = _balance(args)
    if credit is None:
        from .errors import AuthError
        sys.stderr.write("skinanalysis batch: cannot read the balance (%s: %s)%s\n"
                         % (type(err).__name__, err, "" if isinstance(err, AuthError)
                            else "; going on without checking it"))
        if isinstance(err, AuthError):
            return EXIT_FAILED
    elif credit.available < units * new:
        payable = int(credit.available // units) if units else new
        if not args.partial:
            sys.stderr.write("skinanalysis batch: the balance (%s units) pays for %d of %d "
                             "new image(s) (%d units each, %d needed): nothing started; "
                             "use --partial to analyse as many as it pays for\n"
                             % (_fmt(credit.available, 0), payable, new, units, units * new))
            return EXIT_USAGE
        keep, seen = [], 0
        for label, item in zip(labels, items):
            if isinstance(item, ResumeTask) or seen < payable:
                seen += not isinstance(item, ResumeTask)
                keep.append((label, item))
        unpaid = len(items) - len(keep)
        labels = [label for label, _ in keep]
        items = [item for _, item in keep]
        if not items:
            sys.stderr.write("skinanalysis batch: the balance (%s units) pays for no image "
                             "(%d units each)\n" % (_fmt(credit.available, 0), units))
            return EXIT_FAILED
    writer = BatchWriter(out)
    try:
        with _client(args) as client:
            outcomes = client.analyze_many(
                items, actions, concurrency=args.concurrency,
                progress=not args.no_progress, format=args.format, hd=args.hd,
                delete_after=args.delete_after and not args.save_masks,
                on_result=lambda i, image, outcome: _batch_record(
                    client, writer, labels[i], outcome, args.save_masks,
                    args.delete_after))
    finally:
        writer.close()
    failed = [(label, o) for label, o in zip(labels, outcomes) if isinstance(o, BaseException)]
    for label, o in zip(labels, outcomes):
        if getattr(o, "delete_error", None) is not None:
            _say_error(label + " (delete)", o.delete_error)
    for label, exc in failed[:20]:
        _say_error(label, exc)
    sys.stderr.write("%d analysed, %d failed, %d skipped (already in %s)%s%s\n"
                     % (len(items) - len(failed), len(failed), len(images) - len(remaining),
                        out, "; %d task(s) resumed by id" % resumed if resumed else "",
                        "; %d left for lack of units (--partial)" % unpaid if unpaid else ""))
    return _exit_code(outcomes)


# -- cost and emulator ------------------------------------------------------------

def cmd_cost(args: argparse.Namespace) -> int:
    from . import actions as _actions
    names: list[str] = []
    for word in args.actions:
        if word.lower() in ("sd", "hd"):
            names += _actions.SD_ACTIONS if word.lower() == "sd" else _actions.HD_ACTIONS
        else:
            names += _actions.normalize(word)
    units = _actions.cost(names)
    tier = _actions.tier_of(names[0]).upper()
    print("%d units (%s, %d action%s)" % (units, tier, len(set(names)),
                                          "" if len(set(names)) == 1 else "s"))
    return EXIT_OK


def cmd_credit(args: argparse.Namespace) -> int:
    from .errors import Error
    try:
        with _client(args) as client:
            credit = client.credit()
            skus = client.price_list() if args.prices else None
    except Error as exc:
        _say_error("credit", exc)
        return EXIT_FAILED
    if args.json:
        data = credit.to_dict()
        if skus is not None:
            data["price_list"] = [{"description": s.description, "amount": s.amount,
                                   "unit": s.unit, "proc_unit": s.proc_unit,
                                   "run_task_url": s.run_task_url, "feature": s.feature}
                                  for s in skus]
        print(json.dumps(data))
        return EXIT_OK
    print("%s units available to the API" % _fmt(credit.available, 0))
    for gtype, amount in credit.by_type.items():
        print("  %-24s %s" % (gtype, _fmt(amount, 0)))
    for s in skus or ():
        print("  %-50s %s %s per %s" % (s.description or s.feature, _fmt(s.amount, 0),
                                        s.unit, s.proc_unit))
    return EXIT_OK


def cmd_emulator(argv: list[str]) -> int:
    from .emulator.__main__ import main as emulator_main
    return emulator_main(argv)


# -- parser ----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skinanalysis",
        description="Perfect Corp AI Skin Analysis from the command line. The key comes "
                    "from --api-key or $YOUCAM_API_KEY, the host from --base-url or "
                    "$SKINANALYSIS_BASE_URL.",
        epilog="exit codes: 0 ok, 1 an analysis failed, 2 usage or validation errors, "
               "130 interrupted")
    p.add_argument("--api-key", help="API key (prefer $YOUCAM_API_KEY: arguments are "
                                     "visible to other users of the machine)")
    p.add_argument("--base-url", help="API base URL (default $SKINANALYSIS_BASE_URL, "
                                      "else the API's host)")
    p.add_argument("--api-version", default="2.1", choices=("2.0", "2.1"),
                   help="API version (default %(default)s)")
    p.add_argument("--poll-interval", type=float, metavar="S",
                   help="seconds between status polls when the API suggests none "
                        "(default 2)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log progress (-v) or every request (-vv) on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str,
                description: Optional[str] = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=description)
        sp.set_defaults(func=func)
        return sp

    def common(sp: argparse.ArgumentParser, masks_help: str, masks_by: str) -> None:
        """The options analyze and batch share; masks_by: what saves masks."""
        sp.add_argument("--actions", help="comma-separated dst_actions (default: all 16 "
                                          "SD concerns, or all HD ones with --hd)")
        sp.add_argument("--hd", action="store_true", help="use the 16 HD concerns")
        sp.add_argument("--format", choices=("json", "zip"), default="json",
                        help="result format (default %(default)s)")
        sp.add_argument("--concurrency", type=int, default=16,
                        help="analyses at a time (default %(default)s)")
        sp.add_argument("--save-masks", metavar="DIR", help=masks_help)
        sp.add_argument("--delete-after", action="store_true",
                        help="delete each task (its image and outputs) from the vendor once "
                             f"its result (and masks, with {masks_by}) is in hand")

    a = command("analyze", cmd_analyze, "analyse images and print their scores")
    a.add_argument("images", nargs="+", metavar="IMAGE", help="path or http(s) URL")
    common(a, "download masks (and zips) into DIR/<image name>/",
           "--save-masks or --html")
    a.add_argument("--json", action="store_true", help="one JSON object per image")
    a.add_argument("--html", metavar="FILE",
                   help="write the results as one self-contained HTML page (the "
                        "notebook view: composite, colours, score bars)")
    a.add_argument("--out", metavar="FILE",
                   help="append one JSON record per image to FILE (JSON Lines, as "
                        "batch writes: for compare and report)")

    b = command("batch", cmd_batch, "analyse every image of a folder into a file",
                description="Analyse every .jpg/.jpeg/.png of DIR. Records are "
                            "appended as analyses end; a second run skips the "
                            "images already in the output file.")
    b.add_argument("dir", metavar="DIR")
    common(b, "download each image's masks into DIR/<image name>/ (for the "
              "thumbnails of 'report --masks DIR')", "--save-masks")
    b.add_argument("--out", default="results.jsonl",
                   help="output: .jsonl (JSON Lines) or .csv (default %(default)s)")
    b.add_argument("--dry-run", action="store_true",
                   help="check the images and show the cost against the balance "
                        "(reads the balance; creates nothing)")
    b.add_argument("--partial", action="store_true",
                   help="when the balance cannot pay for every image, analyse as many "
                        "as it pays for (in folder order) instead of refusing to start")
    b.add_argument("--recursive", action="store_true", help="include sub-folders")
    b.add_argument("--retry-failed", action="store_true",
                   help="analyse again the images whose last record is a failure; a "
                        "record whose task exists and did not end (polling gave up, "
                        "the run was interrupted, a download failed) is resumed by "
                        "its task id instead of creating a new task")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")

    cr = command("credit", cmd_credit, "the key's balance (units the API can spend, "
                                       "per grant type)")
    cr.add_argument("--json", action="store_true", help="as one JSON object")
    cr.add_argument("--prices", action="store_true", help="also the price list")

    m = command("compare", cmd_compare, "what changed between two saved results",
                description="BEFORE and AFTER are saved results: a result zip, "
                            "a .json record, or a .jsonl file of records (its "
                            "last successful one, or FILE#IMAGE for one image).")
    m.add_argument("before", metavar="BEFORE")
    m.add_argument("after", metavar="AFTER")
    m.add_argument("--html", metavar="FILE",
                   help="also write the paired-bar view as a self-contained page")

    r = command("report", cmd_report, "one self-contained HTML page for a batch",
                description="Summary, the distribution of each concern's score "
                            "(inline SVG) and a row per image, sortable.")
    r.add_argument("results", metavar="RESULTS.jsonl")
    r.add_argument("-o", "--output", default="report.html",
                   help="the HTML file to write (default %(default)s)")
    r.add_argument("--images", metavar="DIR",
                   help="the batch's image folder (thumbnails of the composites)")
    r.add_argument("--masks", metavar="DIR",
                   help="the folder of 'batch --save-masks' (masks of the thumbnails)")

    c = command("cost", cmd_cost, "units a request with these actions costs")
    c.add_argument("actions", nargs="+", metavar="ACTION",
                   help="action names, comma lists, or 'sd'/'hd' for all of a tier")

    # listed for --help; main() hands its arguments to the emulator verbatim
    sub.add_parser("emulator", add_help=False,
                   help="run the local emulator of the API (see 'emulator --help')")
    return p


_GLOBAL_WITH_VALUE = ("--api-key", "--base-url", "--api-version", "--poll-interval")


def _command_index(argv: list[str]) -> int:
    """Index of the command word, skipping the global options; -1 if none."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _GLOBAL_WITH_VALUE:
            i += 2
        elif word.startswith("-"):
            i += 1
        else:
            return i
    return -1


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    at = _command_index(argv)
    if at >= 0 and argv[at] == "emulator":
        return cmd_emulator(argv[at + 1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(name)s: %(levelname)s: %(message)s")
    if getattr(args, "concurrency", 1) < 1:
        parser.error("--concurrency must be at least 1")
    from .errors import AuthError, Error, ValidationError
    try:
        return args.func(args)
    except ValidationError as exc:
        sys.stderr.write("skinanalysis: %s\n" % exc)
        return EXIT_USAGE
    except AuthError as exc:
        sys.stderr.write("skinanalysis: %s\n" % exc)
        return EXIT_USAGE if exc.status is None else EXIT_FAILED  # no key at all
    except Error as exc:
        sys.stderr.write("skinanalysis: %s: %s\n" % (type(exc).__name__, exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("skinanalysis: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["main", "build_parser"]
