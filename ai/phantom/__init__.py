"""Echo phantom: synthetic echocardiography studies whose true measurements are known.

`generate_study(out_dir, seed, ...)` writes four instances, each `NAME.dcm` with `NAME.json`:
plax (US Multi-frame), a4c (US Multi-frame), tr_cw and mv_pw (single-frame US Image).
"""

from ai.phantom.study import CLIP_NAMES, DEFAULT_UID_ROOT, SCHEMA, generate_study, region_of

__all__ = ["CLIP_NAMES", "DEFAULT_UID_ROOT", "SCHEMA", "generate_study", "region_of"]
