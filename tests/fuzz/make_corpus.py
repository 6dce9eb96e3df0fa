#!/usr/bin/env python3
"""Regenerate the committed seed corpora of the fuzz targets (stdlib only).

    python3 tests/fuzz/make_corpus.py

corpus/fuzz_parse: every example body of tests/fixtures/spec/examples plus
answers the client must survive (HTML gateway pages, S3 XML errors, numeric
ids, bare-string results, a deep array).
corpus/fuzz_image: the headers of the fixture images (first 2 KiB) and
hand-built headers (progressive JPEG, EXIF segment larger than the reader's
4 KiB window, standalone markers, PNG IHDR).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(ROOT, "tests", "fixtures", "spec", "examples")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

PARSE_EXTRA = {
    "html-502.txt": b"<html>\r\n<head><title>502 Bad Gateway</title></head>"
                    b"\r\n<body><center><h1>502 Bad Gateway</h1></center>"
                    b"</body></html>\r\n",
    "s3-403.xml": b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                  b"SignatureDoesNotMatch</Code><Message>The request "
                  b"signature we calculated does not match</Message>"
                  b"<RequestId>X</RequestId></Error>",
    "plain-503.txt": b"Service Unavailable\nretry later\n",
    "numeric-ids.json": b'{"status":200,"data":{"task_id":123456789012345678901,'
                        b'"files":[{"file_id":9007199254740993,"requests":[{'
                        b'"method":"PUT","url":"https://h/u?sig=1","headers":'
                        b'{"Content-Length":50000,"Content-Type":"image/jpeg"}'
                        b"}]}]}}",
    "zip-bare-string.json": b'{"status":200,"data":{"task_status":"success",'
                            b'"error":null,"results":"https://example.com/r"}}',
    "running-interval.json": b'{"status":200,"data":{"task_status":"running",'
                             b'"polling_interval":"1500","error":null}}',
    "unknown-status.json": b'{"status":200,"data":{"task_status":"queued\\t",'
                           b'"polling_interval":700,"error":null}}',
    "tolerant-output.json": b'{"data":{"task_status":"success","results":{'
                            b'"output":[null,{"type":"pore","raw_score":"9.5",'
                            b'"mask_urls":"https://m/p.jpg","url":null},'
                            b'{"type":"all","score":1}]}}}',
    "score-info-odd.json": b'{"all":88.5,"skin_age":{"score":"41"},'
                           b'"hd_skin_type":{"whole":{"skin_type":"Oily"}},'
                           b'"weird":[1,2]}',
    "deep.json": b"[" * 80 + b"]" * 80,
    "escapes.json": b'{"error":"a\\u00e9\\ud83d\\ude00\\n","error_code":"\\u0000x"}',
    # NUL escapes and ids that are no ids: every one an unreadable answer
    "nul-task-id.json": b'{"status":200,"data":{"task_id":"TASK\\u0000/../../other"}}',
    "nul-file-id.json": b'{"status":200,"data":{"files":[{"file_id":"FILE\\u0000EVIL",'
                        b'"requests":[{"method":"PUT","url":"https://h/u?sig=1",'
                        b'"headers":{"Content-Type":"image/jpeg"}}]}]}}',
    "nul-concern.json": b'{"status":200,"data":{"task_status":"success","results":'
                        b'{"output":[{"type":"wrin\\u0000kle","ui_score":50}]}}}',
    "nul-key.json": b'{"status":200,"data":{"task_\\u0000id":"T"}}',
    "dot-task-id.json": b'{"status":200,"data":{"task_id":".."}}',
    "slot-ftp.json": b'{"status":200,"data":{"files":[{"file_id":"F","requests":'
                     b'[{"url":"ftp://h/u"}]}]}}',
    "slot-headers.json": b'{"status":200,"data":{"files":[{"file_id":"F","requests":'
                         b'[{"url":"https://h/u","headers":{"Host":"evil","Cookie":"c",'
                         b'"Transfer-Encoding":"chunked","x-amz-acl":"private",'
                         b'"Content-Length":"12"}}]}]}}',
    "space-file-id.json": b'{"status":200,"data":{"files":[{"file_id":"A B",'
                          b'"requests":[{"url":"https://h/u"}]}]}}',
}


def jpeg(sof, height, width, exif=b""):
    out = b"\xff\xd8"
    out += b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    if exif:
        out += b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    out += b"\xff\xd0\xff\x01\xff\xc4\x00\x04\x00\x00\xff\xff"
    out += b"\xff" + bytes([sof]) + struct.pack(">HBHHB", 17, 8, height, width, 3)
    out += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xda"
    return out


def png(width, height):
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
            + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0) + b"\0\0\0\0")


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def main():
    parse_dir = os.path.join(HERE, "corpus", "fuzz_parse")
    image_dir = os.path.join(HERE, "corpus", "fuzz_image")
    for name in sorted(os.listdir(EXAMPLES)):
        if name.endswith(".json"):
            with open(os.path.join(EXAMPLES, name), "rb") as f:
                write(parse_dir, name, f.read())
    for name, data in PARSE_EXTRA.items():
        write(parse_dir, name, data)
    for name in sorted(os.listdir(FIXTURES)):
        if name.endswith((".jpg", ".png")):
            with open(os.path.join(FIXTURES, name), "rb") as f:
                write(image_dir, name, f.read(2048))
    write(image_dir, "progressive.jpg", jpeg(0xC2, 1600, 1200))
    write(image_dir, "baseline.jpg", jpeg(0xC0, 800, 600))
    write(image_dir, "exif-5k.jpg", jpeg(0xC0, 1920, 1080, b"Exif\0\0" + b"\xff" * 5000))
    write(image_dir, "ihdr.png", png(600, 800))


if __name__ == "__main__":
    main()
