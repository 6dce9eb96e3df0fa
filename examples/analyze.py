#!/usr/bin/env python3
"""The basics: one analysis, a job you wait on, errors, and masks on disk.

    YOUCAM_API_KEY=... python3 examples/analyze.py selfie.jpg [masks-folder]
"""

import sys

import skinanalysis


def main(image: str, masks: str = "") -> int:
    with skinanalysis.Client() as client:       # key from YOUCAM_API_KEY
        try:
            result = client.analyze(image, ["wrinkle", "pore", "skin_type"])
        except skinanalysis.ValidationError as exc:
            print("not sent: %s" % exc)            # nothing was billed
            return 2
        except skinanalysis.EngineError as exc:
            print("the engine refused the photo: %s (%s)" % (exc.code, exc.message))
            return 1
        print("wrinkle: %s" % result.get("wrinkle").ui_score)
        print("skin type (T zone): %s" % result.get("skin_type", "t_zone").skin_type)

        # submit() returns at once; wait() with a timeout can be repeated
        job = client.submit(image, skinanalysis.SD_ACTIONS[:4])
        while True:
            try:
                result = job.wait(timeout=1.0)
                break
            except skinanalysis.WaitTimeout:
                print("still %s (task %s)" % (job.status, job.task_id))
        print("overall %.1f after %d polls" % (result.overall, job.polls))
        if masks:
            for path in result.save_masks(masks):
                print("saved", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
