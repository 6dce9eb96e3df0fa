"""Python clients measured by bench/run, one per process.

    python3 py_clients.py KIND BASE_URL IMAGE N

KIND: client (skinanalysis.Client, one analysis after another),
many (skinanalysis.analyze_many, 64 in flight), requests (the vendor's
documented workflow with requests, step by step), httpx (httpx.AsyncClient,
64 in flight). Prints one JSON line: n, ok, wall_s, user_us, sys_us (CPU of
this process over the analyses only, from getrusage).
"""

import asyncio
import json
import os
import resource
import sys
import time

KEY = "emulator-key"
POLL_S = 0.01


def sd_actions():
    import skinanalysis
    return list(skinanalysis.SD_ACTIONS)


def run_client(base, image, n):
    import skinanalysis
    with skinanalysis.Client(api_key=KEY, base_url=base, rate_limit=False,
                             poll_interval=POLL_S) as client:
        return sum(1 for _ in range(n) if client.analyze(image) is not None)


def run_many(base, image, n):
    import skinanalysis
    with skinanalysis.Client(api_key=KEY, base_url=base, rate_limit=False,
                             max_connections=64, poll_interval=POLL_S) as client:
        out = client.analyze_many([image] * n, concurrency=64, progress=False)
    return sum(1 for r in out if isinstance(r, skinanalysis.Result))


def run_requests(base, image, n, actions):
    import requests
    ok = 0
    size = os.path.getsize(image)
    auth = {"Authorization": "Bearer " + KEY}
    for _ in range(n):
        r = requests.post(base + "/s2s/v2.1/file/skin-analysis", headers=auth, json={
            "files": [{"content_type": "image/jpeg", "file_name": "face.jpg",
                       "file_size": size}]})
        r.raise_for_status()
        f = r.json()["data"]["files"][0]
        up = f["requests"][0]
        with open(image, "rb") as fh:
            requests.put(up["url"], data=fh.read(),
                         headers=up["headers"]).raise_for_status()
        r = requests.post(base + "/s2s/v2.1/task/skin-analysis", headers=auth, json={
            "src_file_id": f["file_id"], "dst_actions": actions, "format": "json"})
        r.raise_for_status()
        task = r.json()["data"]["task_id"]
        while True:
            time.sleep(POLL_S)
            r = requests.get(base + "/s2s/v2.1/task/skin-analysis/" + task, headers=auth)
            r.raise_for_status()
            data = r.json()["data"]
            if data["task_status"] != "running":
                break
        if data["task_status"] == "success":
            scores = {o["type"]: o for o in data["results"]["output"]}
            ok += "all" in scores
    return ok


async def httpx_one(http, base, image, actions, sem):
    auth = {"Authorization": "Bearer " + KEY}
    async with sem:
        with open(image, "rb") as fh:
            body = fh.read()
        r = await http.post(base + "/s2s/v2.1/file/skin-analysis", headers=auth, json={
            "files": [{"content_type": "image/jpeg", "file_name": "face.jpg",
                       "file_size": len(body)}]})
        r.raise_for_status()
        f = r.json()["data"]["files"][0]
        up = f["requests"][0]
        (await http.put(up["url"], content=body,
                        headers=up["headers"])).raise_for_status()
        r = await http.post(base + "/s2s/v2.1/task/skin-analysis", headers=auth, json={
            "src_file_id": f["file_id"], "dst_actions": actions, "format": "json"})
        r.raise_for_status()
        task = r.json()["data"]["task_id"]
        while True:
            await asyncio.sleep(POLL_S)
            r = await http.get(base + "/s2s/v2.1/task/skin-analysis/" + task,
                               headers=auth)
            r.raise_for_status()
            data = r.json()["data"]
            if data["task_status"] != "running":
                break
        return data["task_status"] == "success" and len(data["results"]["output"]) > 0


async def run_httpx_async(base, image, n, actions):
    import httpx
    sem = asyncio.Semaphore(64)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        res = await asyncio.gather(*[httpx_one(http, base, image, actions, sem)
                                     for _ in range(n)])
    return sum(res)


def main():
    kind, base, image, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    actions = sd_actions()
    if kind == "httpx":
        import httpx  # noqa: F401  (imported before the measurement)
    elif kind == "requests":
        import requests  # noqa: F401
    t0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    if kind == "client":
        ok = run_client(base, image, n)
    elif kind == "many":
        ok = run_many(base, image, n)
    elif kind == "requests":
        ok = run_requests(base, image, n, actions)
    elif kind == "httpx":
        ok = asyncio.run(run_httpx_async(base, image, n, actions))
    else:
        raise SystemExit("unknown kind " + kind)
    t1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    print(json.dumps({"n": n, "ok": ok, "wall_s": w1 - w0,
                      "user_us": (t1.ru_utime - t0.ru_utime) * 1e6,
                      "sys_us": (t1.ru_stime - t0.ru_stime) * 1e6}))


if __name__ == "__main__":
    main()
