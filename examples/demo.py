#!/usr/bin/env python3
"""Analyse one portrait with the skinanalysis library and print its scores.

Starts nothing itself: scripts/demo starts the emulator and sets
SKINANALYSIS_BASE_URL and YOUCAM_API_KEY; against the real API set the key
only.

    python3 examples/demo.py [IMAGE] [--hd] [--format json|zip]
"""

import argparse
import os
import sys

import skinanalysis

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", nargs="?", default=os.path.join(HERE, "portrait.jpg"))
    p.add_argument("--hd", action="store_true", help="the 16 HD concerns (needs an "
                                                     "image with a short side >= 1080)")
    p.add_argument("--format", choices=("json", "zip"), default="json")
    args = p.parse_args()

    actions = skinanalysis.HD_ACTIONS if args.hd else skinanalysis.SD_ACTIONS
    print("analysing %s: %d %s concerns, %d units on success"
          % (args.image, len(actions), "HD" if args.hd else "SD",
             skinanalysis.cost(actions)))
    try:
        with skinanalysis.Client() as client:
            print("API: %s (v%s)" % (client.base_url, client.version))
            result = client.analyze(args.image, actions, format=args.format)
    except skinanalysis.Error as exc:
        print("failed: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
        return 2 if isinstance(exc, skinanalysis.ValidationError) else 1

    print("task %s" % result.task_id)
    if result.overall is not None:
        print("overall %.1f, skin age %s" % (result.overall, result.skin_age))
    if result.zip_url:
        print("zip: %s" % result.zip_url.split("?", 1)[0])
    if result.scores:
        print("%-24s %-10s %4s %7s  %s" % ("concern", "region", "ui", "raw", "skin type"))
        for s in result:
            print("%-24s %-10s %4s %7s  %s" % (
                s.concern, s.region, "" if s.ui_score is None else s.ui_score,
                "" if s.raw_score is None else "%.2f" % s.raw_score, s.skin_type or ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
