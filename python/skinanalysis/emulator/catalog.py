"""Static facts of the emulated API, copied from shared/API.md.

Everything here is data: concern names and tiers, result regions, mask file
names, the unit price table, the accepted miniserver_args keys, engine error
messages and the documented error bodies.
"""

# Concern names in the published enum order per tier (score_info.json follows
# this order, see shared/spec/examples/score-info-*.json).
SD_ACTIONS = (
    "wrinkle", "droopy_upper_eyelid", "droopy_lower_eyelid", "firmness", "acne",
    "moisture", "eye_bag", "dark_circle_v2", "age_spot", "radiance", "redness",
    "oiliness", "pore", "texture", "tear_trough", "skin_type",
)
HD_ACTIONS = (
    "hd_redness", "hd_oiliness", "hd_age_spot", "hd_radiance", "hd_moisture",
    "hd_dark_circle", "hd_eye_bag", "hd_droopy_upper_eyelid", "hd_droopy_lower_eyelid",
    "hd_firmness", "hd_texture", "hd_acne", "hd_pore", "hd_wrinkle", "hd_tear_trough",
    "hd_skin_type",
)
SD_SET = frozenset(SD_ACTIONS)
HD_SET = frozenset(HD_ACTIONS)
ALL_ACTIONS = SD_SET | HD_SET

# HD concerns split by region (API.md §4, §6.1). Order = score_info.json order.
HD_REGIONS = {
    "hd_wrinkle": ("forehead", "glabellar", "crowfeet", "periocular", "nasolabial",
                   "marionette", "whole"),
    "hd_pore": ("forehead", "nose", "cheek", "whole"),
    "hd_texture": ("whole",),
    "hd_acne": ("whole",),
}
SKIN_TYPE_ACTIONS = frozenset({"skin_type", "hd_skin_type"})
SKIN_TYPE_REGIONS = ("whole", "t_zone", "u_zone")
SKIN_TYPE_VALUES = (
    "Normal", "Oily", "Dry", "Combination", "Redness", "Dry & Redness",
    "Oily & Redness", "Combination & Redness",
)

# Minimum short side per tier (API.md §9).
MIN_SHORT_SIDE = {"sd": 480, "hd": 1080}

# Units per task (API.md §11): (max concerns, SD units, HD units).
UNIT_TABLE = ((4, 9, 12), (8, 12, 16), (12, 14, 20), (16, 16, 22))

ACCEPTED_CONTENT_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png"})
MAX_FILE_SIZE = 10_000_000  # file_size must be strictly below this (API.md §9)

# Top-level task request fields per API version (API.md §3.3).
TASK_FIELDS = {
    "v2.0": frozenset({"src_file_id", "src_file_url", "dst_actions", "miniserver_args", "format"}),
    "v2.1": frozenset({"src_file_id", "src_file_url", "dst_actions", "miniserver_args", "format",
                       "pf_camera_kit"}),
}


def _miniserver_keys():
    keys = {"enable_mask_overlay": "bool"}
    for concern in ("hd_pore", "hd_wrinkle", "hd_acne", "hd_texture", "hd_oiliness",
                    "hd_age_spot", "hd_redness", "hd_firmness"):
        keys["enable_dark_background_" + concern] = "bool"
        keys["color_dark_background_" + concern] = "color"
        keys["opacity_dark_background_" + concern] = "opacity"
    return keys


# miniserver_args keys (API.md §5, union of AE-JSON and YC-SK) -> value kind.
MINISERVER_KEYS = _miniserver_keys()

ENGINE_ERROR_MESSAGES = {
    "error_exceed_max_image_size": "Input image size exceeds the maximum",
    "exceed_max_filesize": "Input file is too big",
    "invalid_parameter": "Invalid parameter",
    "error_download_image": "Failed to download the source image",
    "error_download_mask": "Failed to download the mask",
    "error_decode_image": "Failed to decode the source image",
    "error_decode_mask": "Failed to decode the mask",
    "error_nsfw_content_detected": "NSFW content detected",
    "error_no_face": "No face detected on source image",
    "error_pose": "Pose detection failed",
    "error_face_parsing": "Face parsing failed",
    "error_inference": "Inference pipeline error",
    "exceed_nsfw_retry_limits": "Exceeded NSFW retry limits",
    "error_upload": "Failed to upload the result",
    "unknown_internal_error": "Unknown internal error",
    "error_below_min_image_size": "Image resolution is below the minimum",
    "error_src_face_too_small": "Face is too small",
    "error_src_face_out_of_bound": "Face is out of bound",
    "error_lighting_dark": "Lighting is too dark",
}

# Documented error bodies (shared/spec/examples).
ERR_INVALID_PARAMETERS = {"status": 400, "error": "Invalid parameter value",
                          "error_code": "InvalidParameters"}
ERR_INVALID_TASK_ID = {"status": 400, "error": "Invalid task ID"}
ERR_MIX = {"status": 400, "error": "cannot mix HD and SD dst_actions",
           "error_code": "InvalidParameters"}
ERR_TOO_MANY = {"status": 429, "error": "Too many requests"}
ERR_TASK_TIMEOUT = {"status": 500, "error": "Task execution timed out"}
ERR_FILE_NOT_FOUND = {"status": 404, "error": "File not found", "error_code": "InvalidFileId"}
ERR_NOT_FOUND = {"status": 404, "error": "Not found"}
ERR_METHOD = {"status": 405, "error": "Method not allowed"}

AUTH_VARIANTS = {
    "docs": {"status": 401, "error": "Invalid API key"},
    "observed": {"status": 401, "error": "This API key is not recognized.",
                 "error_code": "InvalidApiKey"},
    "token": {"status": 401, "error": "Unauthorized", "error_code": "InvalidAccessToken"},
}

QUIRKS = frozenset({"zip_bare_string", "numeric_headers", "extra_fields", "polling_interval"})


def err_unknown_action(name):
    return {"status": 400, "error": "Not available dst_action %s" % name,
            "error_code": "InvalidParameters"}


def err_bad_request(message):
    return {"status": 400, "error": message, "error_code": "BadRequest"}


def err_credit(cost, balance):
    return {"status": 400,
            "error": "Credit insufficiency: task costs %d units, balance is %d" % (cost, balance),
            "error_code": "CreditInsufficiency"}


def tier_of(actions):
    """'sd' or 'hd' for a validated, non-mixed list of actions."""
    return "hd" if actions[0] in HD_SET else "sd"


def unit_cost(tier, count):
    for limit, sd, hd in UNIT_TABLE:
        if count <= limit:
            return hd if tier == "hd" else sd
    return UNIT_TABLE[-1][2] if tier == "hd" else UNIT_TABLE[-1][1]


def mask_name(action, region=None):
    """Mask file name as listed in API.md §6.1 (zip) for a concern/region."""
    if action in ("tear_trough", "hd_tear_trough", "skin_type", "hd_skin_type"):
        return action + ".png"
    if action in ("hd_wrinkle", "hd_pore"):
        return "%s_output_%s.png" % (action, "all" if region in (None, "whole") else region)
    return action + "_output.png"


# --- Account endpoints (API.md section 17.1) ---------------------------------

ERR_OPERATION_INVALID = {"status": 400, "error": "Task is not finished yet",
                         "error_code": "OperationInvalid"}
ERR_DELETE_INVALID_TASK_ID = {"status": 400, "error": "Invalid task ID",
                              "error_code": "InvalidTaskId"}

# Grant types: those starting with "Api" are units the API can spend.
GRANT_TYPES_DEFAULT_DAYS = {"ApiSubscription": 30, "ApiPayAsYouGo": 365}
OTHER_GRANT_DAYS = 90
FEATURE_COST_PAGE_MAX = 20


def _skus():
    """The price list (22 SKUs: two pages of 20): the unit table (section
    11) for skin analysis, SD and HD, v2.0 and v2.1 alike, plus a few other
    features."""
    out = []
    for version in ("v2.0", "v2.1"):
        low = 1
        for limit, sd, hd in UNIT_TABLE:
            for tier, amount in (("SD", sd), ("HD", hd)):
                out.append({"description": "AI Skin Analysis %s %s, %d-%d concerns"
                                           % (version, tier, low, limit),
                            "amount": amount, "unit": "unit", "proc_unit": "image",
                            "run_task_url": "/s2s/%s/task/skin-analysis" % version})
            low = limit + 1
    for feature, amount in (("face-attr-analysis", 2), ("hair-color", 3), ("makeup-vto", 3),
                            ("skin-tone-analysis", 2), ("photo-enhance", 1),
                            ("face-reshape", 3)):
        out.append({"description": "AI %s" % feature.replace("-", " ").title(),
                    "amount": amount, "unit": "unit", "proc_unit": "image",
                    "run_task_url": "/s2s/v2.0/task/" + feature})
    return out


SKUS = _skus()
