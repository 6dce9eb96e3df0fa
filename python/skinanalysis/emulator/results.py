"""Deterministic analysis results: scores, json output, score_info.json,
PNG/JPEG masks and the result zip.

The same image bytes and the same set of concerns always give the same
scores and masks: the PRNG is seeded with sha256(image bytes + sorted
actions).
"""

import hashlib
import io
import json
import random
import zipfile

from . import catalog, images

MASK_MAX_SIDE = 256
ZIP_NAME = "skinanalysis_result.zip"
ZIP_FOLDER = "skinanalysisResult/"

# Mask colour per concern family (RGB); alpha carries the mask itself.
_COLOURS = {
    "wrinkle": (255, 80, 80), "pore": (80, 160, 255), "texture": (255, 200, 60),
    "acne": (255, 40, 120), "oiliness": (60, 220, 200), "radiance": (255, 255, 160),
    "eye_bag": (150, 110, 255), "age_spot": (180, 110, 60), "dark_circle": (90, 70, 160),
    "droopy_upper_eyelid": (255, 140, 0), "droopy_lower_eyelid": (255, 170, 60),
    "firmness": (120, 255, 120), "moisture": (60, 140, 255), "redness": (255, 0, 0),
    "tear_trough": (200, 120, 255), "skin_type": (255, 210, 120),
}

# Face-relative boxes (x0, y0, x1, y1 as fractions of the image) per region.
_REGION_BOXES = {
    "whole": (0.22, 0.15, 0.78, 0.88), "forehead": (0.30, 0.16, 0.70, 0.32),
    "glabellar": (0.44, 0.30, 0.56, 0.40), "crowfeet": (0.22, 0.36, 0.78, 0.48),
    "periocular": (0.28, 0.36, 0.72, 0.50), "nasolabial": (0.32, 0.55, 0.68, 0.72),
    "marionette": (0.34, 0.70, 0.66, 0.84), "nose": (0.43, 0.40, 0.57, 0.64),
    "cheek": (0.24, 0.50, 0.76, 0.70), "t_zone": (0.30, 0.16, 0.70, 0.64),
    "u_zone": (0.24, 0.48, 0.76, 0.88), "eyes": (0.28, 0.38, 0.72, 0.52),
    "under_eyes": (0.28, 0.46, 0.72, 0.56),
}
_EYE_CONCERNS = ("eye_bag", "dark_circle", "droopy_upper_eyelid", "droopy_lower_eyelid",
                 "tear_trough")


def _family(action):
    base = action[3:] if action.startswith("hd_") else action
    return "dark_circle" if base == "dark_circle_v2" else base


class Analysis:
    """Scores of one successful task. Built once per task and cached."""

    # Name of the resized input copy (the uploaded bytes, served unchanged).
    resize_name = "resized_image"

    def __init__(self, image_bytes, width, height, actions, tier):
        self.width = width
        self.height = height
        self.tier = tier
        self.actions = [a for a in (catalog.HD_ACTIONS if tier == "hd" else catalog.SD_ACTIONS)
                        if a in set(actions)]
        self.request_order = list(dict.fromkeys(actions))
        digest = hashlib.sha256(image_bytes + "\n".join(sorted(set(actions))).encode()).digest()
        self.seed = digest.hex()
        rng = random.Random(digest)
        self.scores = {}       # action -> {region or None: (raw, ui)}
        self.skin_types = {}   # action -> {region: value}
        ui_all = []
        for action in self.actions:
            if action in catalog.SKIN_TYPE_ACTIONS:
                self.skin_types[action] = {r: rng.choice(catalog.SKIN_TYPE_VALUES)
                                           for r in catalog.SKIN_TYPE_REGIONS}
                continue
            regions = catalog.HD_REGIONS.get(action, (None,))
            per_region = {}
            for region in regions:
                raw = round(rng.uniform(20.0, 98.0), 6)
                ui = max(1, min(100, int(round(42 + raw * 0.45 + rng.uniform(-3, 3)))))
                per_region[region] = (raw, ui)
                ui_all.append(ui)
            self.scores[action] = per_region
        self.overall = (sum(ui_all) / len(ui_all)) if ui_all else round(rng.uniform(50, 90), 4)
        self.skin_age = rng.randint(18, 65)
        self.mask_w, self.mask_h = images.scaled_size(width, height, MASK_MAX_SIDE)

    # -- json format -------------------------------------------------------

    def json_output(self, url_for, extra_fields=False, overlay=False):
        """``results.output`` list; ``url_for(name)`` gives a download URL."""
        out = []
        for action in self.request_order:
            if action in self.skin_types:
                for region in catalog.SKIN_TYPE_REGIONS:
                    out.append({"type": action, "region": region,
                                "skin_type": self.skin_types[action][region],
                                "mask_urls": [url_for(self.json_mask_name(action, region, overlay))]})
                continue
            per_region = self.scores[action]
            regions = list(per_region)
            if "whole" in regions:  # documented json example lists whole first
                regions.remove("whole")
                regions.insert(0, "whole")
            for region in regions:
                raw, ui = per_region[region]
                entry = {"type": action}
                if self.tier == "hd":
                    entry["region"] = region or "whole"
                entry["raw_score"] = raw
                entry["ui_score"] = ui
                entry["mask_urls"] = [url_for(self.json_mask_name(action, region, overlay))]
                out.append(entry)
        out.append({"type": "skin_age", "score": self.skin_age})
        out.append({"type": "all", "score": self.overall})
        out.append({"type": "resize_image", "mask_urls": [url_for(self.resize_name)]})
        if extra_fields:
            for entry in out:
                entry["url"] = None
        return out

    @staticmethod
    def json_mask_name(action, region, overlay):
        if action in catalog.SKIN_TYPE_ACTIONS:
            name = "%s_%s.png" % (action, region)
        else:
            name = catalog.mask_name(action, region)
        return name[:-4] + ".jpg" if overlay else name

    def json_mask_names(self, overlay):
        names = set()
        for action in self.actions:
            if action in self.skin_types:
                regions = catalog.SKIN_TYPE_REGIONS
            else:
                regions = self.scores[action]
            for region in regions:
                names.add(self.json_mask_name(action, region, overlay))
        return names

    # -- zip format --------------------------------------------------------

    def score_info(self, overlay=False):
        info = {}

        def name(n):
            return n[:-4] + ".jpg" if overlay else n

        for action in self.actions:
            if action in self.skin_types:
                info[action] = {region: {"skin_type": value,
                                         "output_mask_name": name(catalog.mask_name(action))}
                                for region, value in self.skin_types[action].items()}
                continue
            per_region = self.scores[action]
            if action in catalog.HD_REGIONS:
                info[action] = {region: {"raw_score": raw, "ui_score": ui,
                                         "output_mask_name": name(catalog.mask_name(action, region))}
                                for region, (raw, ui) in per_region.items()}
            else:
                raw, ui = per_region[None]
                info[action] = {"raw_score": raw, "ui_score": ui,
                                "output_mask_name": name(catalog.mask_name(action))}
        info["all"] = {"score": self.overall}
        info["skin_age"] = self.skin_age
        return info

    def build_zip(self, overlay=False):
        info = self.score_info(overlay)
        names = []
        for value in info.values():
            if isinstance(value, dict):
                if "output_mask_name" in value:
                    names.append(value["output_mask_name"])
                else:
                    names.extend(v["output_mask_name"] for v in value.values()
                                 if isinstance(v, dict) and "output_mask_name" in v)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_zinfo(ZIP_FOLDER + "score_info.json"),
                        json.dumps(info, indent=2).encode())
            for name in dict.fromkeys(names):
                zf.writestr(_zinfo(ZIP_FOLDER + name), self.render_mask(name),
                            compress_type=zipfile.ZIP_STORED)
        return buf.getvalue()

    # -- masks ---------------------------------------------------------------

    def render_mask(self, name):
        """PNG (RGBA alpha mask) or, for ``.jpg`` names, a JPEG overlay."""
        stem = name.rsplit(".", 1)[0]
        action, region = self._parse_mask_name(stem)
        rng = random.Random(self.seed + name)
        w, h = self.mask_w, self.mask_h
        colour = _COLOURS.get(_family(action), (255, 255, 255))
        box = _REGION_BOXES.get(region) or _REGION_BOXES["whole"]
        if _family(action) in _EYE_CONCERNS:
            box = _REGION_BOXES["under_eyes" if "lower" in action or "bag" in action
                                or "trough" in action or "circle" in action else "eyes"]
        spots = [(rng.uniform(box[0], box[2]) * w, rng.uniform(box[1], box[3]) * h,
                  rng.uniform(1.0, 4.0), rng.randint(120, 230)) for _ in range(rng.randint(6, 14))]
        base_alpha = rng.randint(40, 90)
        if name.endswith(".jpg"):
            return self._render_overlay_jpeg(box, colour, base_alpha)
        return images.encode_png(w, h, self._mask_rows(w, h, box, colour, base_alpha, spots))

    def _parse_mask_name(self, stem):
        for action in sorted(catalog.ALL_ACTIONS, key=len, reverse=True):
            if stem.startswith(action):
                rest = stem[len(action):].lstrip("_")
                rest = rest[len("output"):].lstrip("_") if rest.startswith("output") else rest
                region = "whole" if rest in ("", "all") else rest
                return action, region
        return stem, "whole"

    @staticmethod
    def _mask_rows(w, h, box, colour, base_alpha, spots):
        x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max(1.0, (x1 - x0) / 2), max(1.0, (y1 - y0) / 2)
        clear = b"\x00\x00\x00\x00"
        fill = bytes(colour) + bytes([base_alpha])
        rows = []
        for y in range(h):
            dy = (y + 0.5 - cy) / ry
            row = bytearray(clear * w)
            if abs(dy) < 1:
                half = rx * (1 - dy * dy) ** 0.5
                a = max(0, int(cx - half))
                b = min(w, int(cx + half) + 1)
                if b > a:
                    row[a * 4:b * 4] = fill * (b - a)
            for sx, sy, sr, salpha in spots:
                if abs(y + 0.5 - sy) <= sr:
                    a = max(0, int(sx - sr))
                    b = min(w, int(sx + sr) + 1)
                    if b > a:
                        row[a * 4:b * 4] = (bytes(colour) + bytes([salpha])) * (b - a)
            rows.append(row)
        return rows

    def _render_overlay_jpeg(self, box, colour, alpha):
        w, h = self.mask_w, self.mask_h
        bx0, by0, bx1, by1 = (int(box[0] * w) // 8, int(box[1] * h) // 8,
                              int(box[2] * w) // 8, int(box[3] * h) // 8)
        mix = alpha / 255.0
        inside = tuple(int(128 * (1 - mix) + c * mix) for c in colour)
        return images.encode_jpeg_blocks(
            w, h, lambda x, y: inside if bx0 <= x <= bx1 and by0 <= y <= by1 else (128, 128, 128))


def _zinfo(name):
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info
