#!/usr/bin/env python3
"""asyncio and batches: many images at once, results in input order.

    YOUCAM_API_KEY=... python3 examples/async_batch.py photo1.jpg photo2.jpg ...
"""

import asyncio
import sys

import skinanalysis


async def analyse_async(images):
    async with skinanalysis.AsyncClient() as client:
        return await client.analyze_many(images, ["wrinkle", "pore"], concurrency=8)


def main(images) -> int:
    # blocking: a progress bar (tqdm when installed), Ctrl-C waits for the
    # running tasks (a second Ctrl-C abandons them)
    results = skinanalysis.analyze_many(images, ["wrinkle", "pore"], concurrency=8)
    # the same with asyncio, no thread per call
    again = asyncio.run(analyse_async(images))
    for image, res, res2 in zip(images, results, again):
        if isinstance(res, Exception):
            print("%s: %s: %s" % (image, type(res).__name__, res))
        else:
            print("%s: wrinkle %s / %s" % (image, res.get("wrinkle").ui_score,
                                          res2.get("wrinkle").ui_score))
    return 0 if not any(isinstance(r, Exception) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
